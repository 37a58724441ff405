// Actions: the list with search, each action's state (disabled after failing) with its
// Enable / Disable button, delete, and the two imports.

import { gql } from "../api.js";
import { app } from "../app.js";
import {
  clear,
  confirmDialog,
  debounce,
  EVENT_NAMES,
  h,
  icon,
  iconButton,
  originText,
  pageHeader,
  toast,
} from "../dom.js";
import { markdown } from "../markdown.js";
import { openMasterImport, openPostmanImport } from "./imports.js";

export async function actionList(view) {
  const search = h("input", {
    type: "search",
    id: "action-search",
    placeholder: "Name, URL or description",
    autocomplete: "off",
  });
  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true });

  async function load() {
    const { actions } = await gql(
      `query($s: String) { actions(search: $s) {
        id name description method url events undefinedParameters origin
        health { state consecutiveFailures disabledAt disabledReason pausedUntil pausedReason } } }`,
      { s: search.value.trim() || null },
    );
    clear(
      tbody,
      actions.map((a) =>
        h(
          "tr",
          { dataset: { id: a.id, name: a.name } },
          h(
            "td",
            {},
            h("a", { href: `#/actions/${a.id}`, class: "strong" }, a.name),
            a.description ? h("div", { class: "muted small clamp description" }, markdown(a.description)) : null,
          ),
          h("td", {}, h("span", { class: `method method-${a.method.toLowerCase()}` }, a.method)),
          h("td", { class: "url-cell" }, h("code", { title: a.url }, a.url)),
          h(
            "td",
            {},
            a.events.length
              ? h(
                  "ul",
                  { class: "chips" },
                  a.events.map((e) => h("li", { class: "chip" }, EVENT_NAMES[e] || e)),
                )
              : h("span", { class: "muted" }, "—"),
          ),
          h(
            "td",
            {},
            a.undefinedParameters.length
              ? h(
                  "a",
                  {
                    href: `#/actions/${a.id}`,
                    class: "warn-link",
                    title: `Undefined: ${a.undefinedParameters.join(", ")}`,
                  },
                  icon("alert"),
                  ` ${a.undefinedParameters.length} undefined`,
                )
              : null,
            a.origin ? h("div", { class: "muted small origin" }, originText(a.origin)) : null,
          ),
          h("td", {}, healthCell(a)),
          h(
            "td",
            { class: "col-tools" },
            h(
              "a",
              {
                href: `#/actions/${a.id}`,
                class: "icon-button",
                title: `Edit ${a.name}`,
                "aria-label": `Edit ${a.name}`,
              },
              icon("edit"),
            ),
            app.canWrite ? stateButton(a) : null,
            app.canWrite ? iconButton("trash", `Delete ${a.name}`, () => remove(a), "danger-icon") : null,
          ),
        ),
      ),
    );
    empty.hidden = actions.length > 0;
    empty.textContent = search.value.trim()
      ? "No action matches the search."
      : "No actions yet. Add one, or import them.";
  }

  function stateButton(action) {
    const enable = action.health.state === "DISABLED";
    const label = `${enable ? "Enable" : "Disable"} ${action.name}`;
    return h(
      "button",
      { type: "button", class: "small", title: label, "aria-label": label, onclick: () => setEnabled(action, enable) },
      enable ? "Enable" : "Disable",
    );
  }

  async function setEnabled(action, enabled) {
    try {
      await gql("mutation($id: ID!, $on: Boolean!) { setActionEnabled(id: $id, enabled: $on) { id } }", {
        id: action.id,
        on: enabled,
      });
      toast(`${action.name} ${enabled ? "enabled" : "disabled"}.`);
      await load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function remove(action) {
    const note = action.events.length
      ? ` It is detached from ${action.events.map((e) => EVENT_NAMES[e]).join(", ")}.`
      : "";
    if (!(await confirmDialog("Delete action", `Delete ${action.name}?${note}`))) return;
    try {
      await gql("mutation($id: ID!) { deleteAction(id: $id) }", { id: action.id });
      toast(`${action.name} deleted.`);
      await load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const reload = () => load().catch((e) => toast(e.message, "error"));
  search.addEventListener("input", debounce(reload, 250));
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      reload();
    }
  });
  // The Master tenant's actions are the ones the others import: it has none to import.
  const { settings } = await gql("{ settings { masterTenant } }");
  const tools = app.canWrite
    ? [
        h("a", { href: "#/actions/new", class: "button primary" }, icon("plus"), " Add Action"),
        settings.masterTenant
          ? null
          : h("button", { type: "button", onclick: () => openMasterImport(reload) }, icon("download"), " Import Actions"),
        h(
          "button",
          { type: "button", onclick: () => openPostmanImport(reload) },
          icon("upload"),
          " Import Postman Collection",
        ),
      ]
    : [];
  await load();
  clear(
    view,
    pageHeader("Actions", ...tools),
    h(
      "p",
      { class: "lead" },
      "HTTP requests sent when an event they are attached to occurs. One action can be attached to several events.",
    ),
    h(
      "div",
      { class: "filters" },
      h("div", { class: "field field-grow" }, h("label", { for: "action-search" }, "Search"), search),
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "actions-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Name", "Method", "URL", "Events", "Notes", "State"].map((t) => h("th", { scope: "col" }, t)),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Tools")),
          ),
        ),
        tbody,
      ),
    ),
    empty,
  );
}

// The action's state: Enabled, or Disabled with its reason (automatic after failing, or by
// hand); its deliveries that ended FAILED in a row, if any; and whether a worker paused it
// while its endpoint keeps failing (its deliveries wait for a probe: dispatch/breaker.py).
function healthCell(action) {
  const health = action.health;
  const disabled = health.state === "DISABLED";
  const failures = health.consecutiveFailures;
  return [
    h(
      "span",
      { class: `badge ${disabled ? "off" : "yes"}`, title: disabled ? health.disabledReason : "" },
      disabled ? "Disabled" : "Enabled",
    ),
    disabled ? h("div", { class: "muted small clamp" }, health.disabledReason) : null,
    failures ? h("div", { class: "muted small" }, `${failures} failed in a row`) : null,
    health.pausedUntil
      ? h("div", { class: "small clamp", title: health.pausedReason }, `Paused: ${health.pausedReason}`)
      : null,
  ];
}
