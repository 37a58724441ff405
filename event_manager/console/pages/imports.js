// Actions → Import Actions (from the Master tenant) and Import Postman Collection.

import { gql } from "../api.js";
import { busy, clear, field, h, icon, nextId, openDialog, plural, showError } from "../dom.js";
import { markdown } from "../markdown.js";
import { checkList } from "../widgets.js";

const RESULT_FIELDS = "imported { id name } skipped renamed errors";

function conflictPolicy() {
  const name = nextId("policy");
  const option = (value, label, hint, checked = false) => {
    const input = h("input", { type: "radio", name, value, checked, id: nextId("rb") });
    return h(
      "label",
      { class: "radio", for: input.id },
      input,
      h("span", {}, h("strong", {}, label), " ", h("span", { class: "muted" }, hint)),
    );
  };
  const el = h(
    "fieldset",
    { class: "plain radios", "data-field": "onConflict", tabindex: "-1" },
    h("legend", {}, "When an action of the same name exists"),
    option("SKIP", "Skip", "keep the existing action", true),
    option("RENAME", "Rename", "import as “Name (2)”"),
    option("OVERWRITE", "Overwrite", "replace it, keeping its events"),
  );
  return { el, value: () => el.querySelector("input:checked").value };
}

function list(title, items, cls = "") {
  if (!items.length) return null;
  return h(
    "div",
    { class: `result-block ${cls}` },
    h("h3", {}, `${title} (${items.length})`),
    h(
      "ul",
      {},
      items.map((item) => h("li", {}, item)),
    ),
  );
}

/** What an import did: imported, skipped, renamed, errors, warnings, and new variables. */
function resultView(result, done) {
  const summary = `${result.imported.length} imported, ${result.skipped.length} skipped, ${result.renamed.length} renamed, ${result.errors.length} with errors`;
  const parts = [
    h("p", { class: `result-summary ${result.errors.length ? "has-errors" : ""}`, role: "status" }, summary),
    list(
      "Imported",
      result.imported.map((a) => h("a", { href: `#/actions/${a.id}`, onclick: done }, a.name)),
      "ok",
    ),
    list("Skipped: an action of that name exists", result.skipped),
    list("Renamed", result.renamed),
    list("Errors", result.errors, "bad"),
    list("Warnings: left out of the imported requests", result.warnings || [], "warn"),
  ];
  const variables = result.newVariables || [];
  if (variables.length) {
    const outcome = h(
      "ul",
      { class: "variables" },
      variables.map((v) =>
        h(
          "li",
          { dataset: { key: v.key } },
          h("code", {}, `{{${v.key}}}`),
          " = ",
          h("span", { class: "data" }, v.value || "(empty)"),
          h("span", { class: "outcome" }),
        ),
      ),
    );
    const add = h("button", { type: "button", class: "primary" }, icon("plus"), " Add as parameters");
    add.addEventListener("click", () =>
      busy(add, async () => {
        for (const v of variables) {
          const cell = outcome.querySelector(`li[data-key="${CSS.escape(v.key)}"] .outcome`);
          try {
            await gql("mutation($i: ParameterInput!) { createParameter(input: $i) { tag } }", {
              i: { tag: v.key, value: v.value, description: "from a Postman collection" },
            });
            cell.textContent = " added";
            cell.className = "outcome ok";
          } catch (error) {
            cell.textContent = ` not added: ${error.message}`;
            cell.className = "outcome bad";
          }
        }
        add.remove();
      }),
    );
    parts.push(
      h(
        "div",
        { class: "result-block" },
        h("h3", {}, `New variables (${variables.length})`),
        h("p", { class: "muted" }, "The collection uses these variables, which are not parameters of this tenant yet."),
        outcome,
        add,
      ),
    );
  }
  return parts;
}

export function openMasterImport(onImported) {
  let imported = false;
  const { body, footer, close } = openDialog("Import Actions", {
    wide: true,
    onClose: () => {
      if (imported) onImported();
    },
  });
  body.append(h("p", { class: "muted", "aria-busy": "true" }, "Loading the Master tenant's actions…"));
  gql("{ masterActions { id name description method url } }")
    .then(({ masterActions }) => {
      const formId = nextId("form");
      const submit = h("button", { type: "submit", class: "primary", form: formId, disabled: true }, "Import");
      const picker = checkList(
        masterActions.map((a) => ({
          id: a.id,
          label: a.name,
          detail: `${a.method} ${a.url}`,
          note: a.description ? markdown(a.description) : null,
        })),
        new Set(),
        {
          label: "Actions of the Master tenant",
          path: "ids",
          selectAll: true,
          selectAllLabel: "Select all actions",
          empty: "The Master tenant has no actions.",
          onChange: (ids) => {
            submit.disabled = ids.length === 0;
          },
        },
      );
      const policy = conflictPolicy();
      const form = h(
        "form",
        { id: formId, novalidate: true },
        h("p", {}, "Copies of the chosen actions are added to this tenant."),
        picker.el,
        policy.el,
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        busy(submit, async () => {
          try {
            const { importMasterActions } = await gql(
              `mutation($ids: [ID!]!, $p: ConflictPolicy) {
              importMasterActions(ids: $ids, onConflict: $p) { ${RESULT_FIELDS} } }`,
              { ids: picker.selectedIds(), p: policy.value() },
            );
            imported = true;
            clear(
              body,
              resultView(importMasterActions, () => close("imported")),
            );
            clear(footer, h("button", { type: "button", class: "primary", onclick: () => close("imported") }, "Done"));
            footer.firstChild.focus();
          } catch (error) {
            showError(form, error);
          }
        });
      });
      clear(body, form);
      clear(footer, h("button", { type: "button", onclick: () => close() }, "Cancel"), submit);
      form.querySelector("input")?.focus();
    })
    .catch((error) => {
      clear(
        body,
        h("div", { class: "form-error", role: "alert" }, icon("alert"), " ", error.message, h("code", {}, error.code)),
      );
      clear(footer, h("button", { type: "button", onclick: () => close() }, "Close"));
      footer.firstChild.focus();
    });
}

export function openPostmanImport(onImported) {
  let imported = false;
  const { body, footer, close } = openDialog("Import Postman Collection", {
    wide: true,
    onClose: () => {
      if (imported) onImported();
    },
  });
  const formId = nextId("form");
  const file = h("input", { type: "file", accept: ".json,application/json", "data-field": "collection" });
  const preview = h("div", { class: "postman-preview" });
  const submit = h("button", { type: "submit", class: "primary", form: formId, disabled: true }, "Import");
  const policy = conflictPolicy();
  let collection = null;
  let picker = null;
  const form = h(
    "form",
    { id: formId, novalidate: true },
    field(
      "Collection file",
      file,
      "A collection exported from Postman (v2.1, v2.0 or v1 JSON). It is read in this browser and sent to the service.",
    ),
    preview,
  );

  file.addEventListener("change", async () => {
    clear(preview);
    submit.disabled = true;
    collection = null;
    const chosen = file.files[0];
    if (!chosen) return;
    preview.append(h("p", { class: "muted" }, `Reading ${chosen.name}…`));
    try {
      const text = await chosen.text();
      const { postmanCollection: parsed } = await gql(
        `query($c: String!) { postmanCollection(collection: $c) {
          name format warnings newVariables { key value }
          requests { ref name folder method url importable problem warnings } } }`,
        { c: text },
      );
      collection = text;
      const importable = parsed.requests.filter((r) => r.importable).length;
      picker = checkList(
        parsed.requests.map((r) => ({
          id: r.ref,
          label: r.name,
          disabled: !r.importable,
          detail: `${r.folder && !r.name.startsWith(r.folder) ? `${r.folder} · ` : ""}${r.method} ${r.url}`,
          note: r.problem || (r.warnings.length ? r.warnings.join("; ") : null),
        })),
        new Set(),
        {
          label: "Requests",
          path: "refs",
          selectAll: true,
          selectAllLabel: "Select all Actions",
          empty: "The collection has no requests.",
          onChange: (refs) => {
            submit.disabled = refs.length === 0;
          },
        },
      );
      clear(
        preview,
        h(
          "p",
          { class: "collection-name" },
          h("strong", {}, parsed.name),
          ` · Postman ${parsed.format} · ${plural(parsed.requests.length, "request")}, ${importable} can be imported`,
        ),
        parsed.warnings.length
          ? h(
              "details",
              { class: "warnings" },
              h("summary", {}, plural(parsed.warnings.length, "warning")),
              h(
                "ul",
                {},
                parsed.warnings.map((w) => h("li", {}, w)),
              ),
            )
          : null,
        picker.el,
        policy.el,
      );
    } catch (error) {
      clear(preview);
      showError(form, error.field ? error : Object.assign(error, { field: "collection" }));
    }
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!collection || !picker) return;
    busy(submit, async () => {
      try {
        const { importPostmanCollection } = await gql(
          `mutation($c: String!, $refs: [String!], $p: ConflictPolicy) {
            importPostmanCollection(collection: $c, refs: $refs, onConflict: $p) {
              ${RESULT_FIELDS} warnings newVariables { key value } } }`,
          { c: collection, refs: picker.selectedIds(), p: policy.value() },
        );
        imported = true;
        clear(
          body,
          resultView(importPostmanCollection, () => close("imported")),
        );
        clear(footer, h("button", { type: "button", class: "primary", onclick: () => close("imported") }, "Done"));
        footer.firstChild.focus();
      } catch (error) {
        showError(form, error);
      }
    });
  });
  body.append(form);
  footer.append(h("button", { type: "button", onclick: () => close() }, "Cancel"), submit);
  file.focus();
}
