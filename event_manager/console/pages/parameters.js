// Parameters: the system ones (cog icon, read-only) and the tenant's custom ones.

import { gql, MASK } from "../api.js";
import { app } from "../app.js";
import {
  busy,
  clear,
  confirmDialog,
  debounce,
  field,
  h,
  icon,
  iconButton,
  nextId,
  openDialog,
  pageHeader,
  showError,
  toast,
} from "../dom.js";

const PARAMETER_FIELDS = "tag value system secret description";

/**
 * The Add / Edit Parameter dialog. `parameter` may be partial ({tag} when adding one an
 * action uses); `onSaved(parameter)` runs after it is stored.
 */
export function openParameterDialog(parameter = {}, onSaved = () => {}) {
  const editing = Boolean(parameter.value !== undefined && parameter.tag);
  const { body, footer, close } = openDialog(editing ? `Edit parameter ${parameter.tag}` : "Add parameter");
  const formId = nextId("form");
  const tag = h("input", {
    type: "text",
    value: parameter.tag || "",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.tag",
    placeholder: "team",
  });
  const masked = parameter.secret && parameter.value === MASK;
  const value = h("textarea", {
    rows: 2,
    "data-field": "input.value",
    spellcheck: "false",
    placeholder: masked ? "unchanged (type to replace)" : "support",
  });
  value.value = masked ? "" : parameter.value || "";
  // Enter saves, as in a one-line field; Shift+Enter makes a new line.
  value.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  const secret = h("input", {
    type: "checkbox",
    checked: Boolean(parameter.secret),
    "data-field": "input.secret",
    id: nextId("ck"),
  });
  const description = h("input", {
    type: "text",
    value: parameter.description || "",
    autocomplete: "off",
    "data-field": "input.description",
  });
  const save = h("button", { type: "submit", class: "primary", form: formId }, editing ? "Save" : "Add parameter");
  const form = h(
    "form",
    { id: formId, novalidate: true },
    field("Tag", tag, h("span", {}, "Used in actions as ", h("code", {}, `{{${parameter.tag || "tag"}}}`), ".")),
    field("Data", value, "The value sent in place of the tag. Shift+Enter for a new line."),
    h(
      "div",
      { class: "field field-check" },
      secret,
      h("label", { for: secret.id }, "Secret"),
      h("small", { class: "hint" }, "Shown masked after saving; sent as is."),
    ),
    field("Description", description),
  );
  tag.addEventListener("input", () => {
    form.querySelector(".hint code").textContent = `{{${tag.value.trim() || "tag"}}}`;
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const input = {
      tag: tag.value.trim(),
      value: masked && value.value === "" ? MASK : value.value,
      secret: secret.checked,
      description: description.value,
    };
    busy(save, async () => {
      try {
        const data = editing
          ? await gql(
              `mutation($t: String!, $i: ParameterInput!) { updateParameter(tag: $t, input: $i) { ${PARAMETER_FIELDS} } }`,
              { t: parameter.tag, i: input },
            )
          : await gql(`mutation($i: ParameterInput!) { createParameter(input: $i) { ${PARAMETER_FIELDS} } }`, {
              i: input,
            });
        close("saved");
        onSaved(data.updateParameter || data.createParameter);
      } catch (error) {
        showError(form, error);
      }
    });
  });
  body.append(form);
  footer.append(h("button", { type: "button", onclick: () => close() }, "Cancel"), save);
  (parameter.tag && !editing ? value : tag).focus();
}

export async function parameterList(view) {
  const search = h("input", {
    type: "search",
    id: "parameter-search",
    placeholder: "Tag or data",
    autocomplete: "off",
  });
  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true }, "No parameter matches.");

  async function load() {
    const { parameters } = await gql(`query($s: String) { parameters(search: $s) { ${PARAMETER_FIELDS} } }`, {
      s: search.value.trim() || null,
    });
    // The tenant's own parameters first: those are the ones to manage.
    parameters.sort((a, b) => Number(a.system) - Number(b.system));
    clear(
      tbody,
      parameters.map((p) =>
        h(
          "tr",
          { dataset: { tag: p.tag, system: p.system } },
          h("td", { class: "col-icon" }, p.system ? icon("cog", "System parameter") : null),
          h("td", {}, h("code", { class: "tag" }, `{{${p.tag}}}`)),
          h(
            "td",
            {},
            p.system
              ? h("span", { class: "muted" }, "filled in per event")
              : p.secret
                ? h("span", { class: "secret" }, icon("lock", "Secret"), " ", p.value)
                : h("span", { class: "data" }, p.value),
          ),
          h("td", { class: "muted" }, p.description),
          h(
            "td",
            { class: "col-tools" },
            p.system || !app.canWrite
              ? null
              : [
                  iconButton("edit", `Edit ${p.tag}`, () =>
                    openParameterDialog(p, (saved) => {
                      toast(`Parameter ${saved.tag} saved.`);
                      load();
                    }),
                  ),
                  iconButton(
                    "trash",
                    `Delete ${p.tag}`,
                    async () => {
                      if (
                        !(await confirmDialog(
                          "Delete parameter",
                          `Delete {{${p.tag}}}? Actions that use it will send the tag as written.`,
                        ))
                      )
                        return;
                      try {
                        await gql("mutation($t: String!) { deleteParameter(tag: $t) }", { t: p.tag });
                        toast(`Parameter ${p.tag} deleted.`);
                        load();
                      } catch (error) {
                        toast(error.message, "error");
                      }
                    },
                    "danger-icon",
                  ),
                ],
          ),
        ),
      ),
    );
    empty.hidden = parameters.length > 0;
  }

  search.addEventListener(
    "input",
    debounce(() => load().catch((e) => toast(e.message, "error")), 250),
  );
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      load();
    }
  });
  const add = app.canWrite
    ? h(
        "button",
        {
          type: "button",
          class: "primary",
          onclick: () =>
            openParameterDialog({}, (saved) => {
              toast(`Parameter ${saved.tag} added.`);
              load();
            }),
        },
        icon("plus"),
        " Add Parameter",
      )
    : null;
  await load();
  clear(
    view,
    pageHeader("Parameters", add),
    h(
      "p",
      { class: "lead" },
      "Use a parameter in an action as ",
      h("code", {}, "{{tag}}"),
      ": it is replaced when the request is sent. System parameters (",
      icon("cog", "cog"),
      ") are filled in from each event and cannot be edited or deleted.",
    ),
    h(
      "div",
      { class: "filters" },
      h("div", { class: "field field-grow" }, h("label", { for: "parameter-search" }, "Search"), search),
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "parameters-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Kind")),
            h("th", { scope: "col" }, "Tag"),
            h("th", { scope: "col" }, "Data"),
            h("th", { scope: "col" }, "Description"),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Tools")),
          ),
        ),
        tbody,
      ),
    ),
    empty,
  );
}
