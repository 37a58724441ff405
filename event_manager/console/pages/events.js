// Events → Event List, and the Event edit page (actions, active switch).

import { gql } from "../api.js";
import { app } from "../app.js";
import { busy, clear, h, icon, iconButton, pageHeader, showError, toast, toggle } from "../dom.js";
import { checkList } from "../widgets.js";
import { openTestDialog } from "./test.js";

const EVENT_FIELDS = "type name description active effectiveActive actions { id name method url }";

function disabledBanner() {
  return h(
    "div",
    { class: "banner banner-warn", role: "note" },
    icon("alert"),
    h(
      "div",
      {},
      h("strong", {}, "Actions are disabled for all events."),
      " Active events are shown grayed out and send nothing. ",
      h("a", { href: "#/settings" }, "Enable actions in Settings"),
    ),
  );
}

export async function eventList(view) {
  const { settings, events } = await gql(`{ settings { actionsEnabled timezone } events { ${EVENT_FIELDS} } }`);
  app.settings = settings;
  const rows = events.map((event) => {
    const status = h(
      "span",
      {
        class: `badge ${event.active ? "yes" : "no"}${event.effectiveActive ? "" : " grayed"}`,
        title:
          event.active && !event.effectiveActive ? "Active, but actions are disabled for all events in Settings" : null,
      },
      event.active ? "Yes" : "No",
    );
    return h(
      "tr",
      {
        class: event.effectiveActive ? "" : "grayed-row",
        dataset: { event: event.type, effective: event.effectiveActive },
      },
      h("td", {}, h("a", { href: `#/events/${event.type}`, class: "strong" }, event.name)),
      h("td", { class: "muted" }, event.description),
      h(
        "td",
        {},
        event.actions.length
          ? h(
              "ul",
              { class: "chips" },
              event.actions.map((a) => h("li", { class: "chip" }, a.name)),
            )
          : h("span", { class: "muted" }, "none"),
      ),
      h("td", { class: "col-active" }, status),
      h(
        "td",
        { class: "col-tools" },
        app.canWrite
          ? iconButton("play", `Test ${event.name}`, () =>
              openTestDialog(event, () => {
                toast(`Test of ${event.name} sent. See the Activity Monitor.`);
              }),
            )
          : null,
        h(
          "a",
          {
            href: `#/events/${event.type}`,
            class: "icon-button",
            title: `Edit ${event.name}`,
            "aria-label": `Edit ${event.name}`,
          },
          icon("edit"),
        ),
      ),
    );
  });
  clear(
    view,
    pageHeader("Event List"),
    h(
      "p",
      { class: "lead" },
      "The PBX's call events. Attach actions to an event and make it active to send them when it occurs.",
    ),
    settings.actionsEnabled ? null : disabledBanner(),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "events-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Event"),
            h("th", { scope: "col" }, "Description"),
            h("th", { scope: "col" }, "Actions"),
            h("th", { scope: "col" }, "Active"),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Tools")),
          ),
        ),
        h("tbody", {}, rows),
      ),
    ),
  );
}

export async function eventEditor(view, type) {
  const { settings, event, actions } = await gql(
    `query($t: EventType!) { settings { actionsEnabled timezone } event(type: $t) { ${EVENT_FIELDS} }
      actions { id name method url } }`,
    { t: type },
  );
  const attached = new Set(event.actions.map((a) => a.id));
  const picker = checkList(
    actions.map((a) => ({ id: a.id, label: a.name, detail: `${a.method} ${a.url}` })),
    attached,
    {
      label: "Select one or more actions to send when this event occurs",
      path: "input.actionIds",
      search: "Search actions",
      disabled: !app.canWrite,
      empty: "There are no actions yet.",
    },
  );
  const active = toggle("Active", event.active, { "data-field": "input.active", disabled: !app.canWrite });
  const save = h("button", { type: "submit", class: "primary", disabled: !app.canWrite }, "Save");
  const form = h(
    "form",
    { class: "form card", novalidate: true },
    h(
      "section",
      { class: "form-section" },
      h("h2", {}, "Actions"),
      picker.el,
      actions.length ? null : h("p", {}, h("a", { href: "#/actions/new" }, "Add an action")),
    ),
    h(
      "section",
      { class: "form-section" },
      h("h2", {}, "Settings"),
      active.wrapper,
      h("p", { class: "muted" }, "Enables or disables the actions of this event."),
      settings.actionsEnabled
        ? null
        : h(
            "p",
            { class: "note" },
            icon("alert"),
            " Actions are disabled for all events in ",
            h("a", { href: "#/settings" }, "Settings"),
            ", so this event sends nothing until they are enabled.",
          ),
    ),
    h(
      "div",
      { class: "form-footer" },
      save,
      h("a", { href: "#/events", class: "button" }, "Cancel"),
      app.canWrite
        ? h(
            "button",
            {
              type: "button",
              class: "push-right",
              onclick: () =>
                openTestDialog(event, () => {
                  toast(`Test of ${event.name} sent. See the Activity Monitor.`);
                }),
            },
            icon("play"),
            " Test",
          )
        : null,
    ),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(save, async () => {
      try {
        const result = await gql(
          `mutation($t: EventType!, $i: EventInput!) { updateEvent(type: $t, input: $i) { ${EVENT_FIELDS} } }`,
          { t: type, i: { active: active.input.checked, actionIds: picker.selectedIds() } },
        );
        toast(`${result.updateEvent.name} saved.`);
        location.hash = "#/events";
      } catch (error) {
        showError(form, error);
      }
    });
  });
  clear(
    view,
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/events" }, "Event List"),
      " / ",
      event.name,
    ),
    pageHeader(`Edit event: ${event.name}`),
    h("p", { class: "lead" }, event.description),
    form,
  );
}
