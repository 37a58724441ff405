// Audit log: who changed what in the tenant, newest first (TENANT_ADMIN and SYSTEM_ADMIN),
// narrowed by operation, target, actor and time.

import { gql } from "../api.js";
import { app } from "../app.js";
import { busy, clear, formatTime, h, icon, inZone, labelCells, pageHeader, toast, zonedToIso } from "../dom.js";
import { filterBar, filterSelect } from "../widgets.js";

const PAGE = 50;
const ENTRY_FIELDS =
  "id at operation target { kind id name } actor { keyId label role } changes { field before after cut }";
// What the API records (README, "Audit trail"), and the kinds of the targets.
const OPERATIONS = [
  "createAction",
  "updateAction",
  "deleteAction",
  "setActionEnabled",
  "updateEvent",
  "updateSettings",
  "createParameter",
  "updateParameter",
  "deleteParameter",
  "importMasterActions",
  "importPostmanCollection",
  "createTenant",
  "setEventManagerEnabled",
  "createApiKey",
  "revokeApiKey",
];
const KINDS = ["action", "event", "settings", "parameter", "apiKey", "tenant", "import"];

/** A value of a change as text: null (not set) is a dash, strings as they are, the rest as JSON. */
function shown(value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
  return h("code", {}, typeof value === "string" ? value : JSON.stringify(value));
}

function changeList(changes) {
  if (!changes.length) return h("span", { class: "muted" }, "no field changed");
  return h(
    "ul",
    { class: "audit-changes" },
    changes.map((c) =>
      h("li", {}, h("strong", {}, c.field), ": ", shown(c.before), " → ", shown(c.after), c.cut ? " (cut)" : ""),
    ),
  );
}

function targetText(target) {
  const name = target.name || target.id;
  return name ? `${target.kind} ${name}` : target.kind;
}

const timeField = (label, id) =>
  h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, type: "datetime-local" }));

export async function auditLog(view) {
  const tz = app.settings.timezone;
  // A target and an actor are chosen in a row, and shown in the bar as a pin that removes itself.
  let target = null; // {id, text}, of the kind chosen in What
  let actor = null; // {keyId, label}
  const pins = h("div", { class: "filter-pins" });
  const reset = h("button", { type: "button", class: "small" }, icon("x"), " Clear filters");
  const bar = filterBar(
    "Filter the audit log",
    filterSelect("Operation", "f-operation", OPERATIONS.map((o) => [o, o])),
    filterSelect("What", "f-kind", KINDS.map((k) => [k, k])),
    timeField(inZone("From", tz), "f-since"),
    timeField(inZone("To", tz), "f-until"),
    pins,
    h("div", { class: "filter-reset" }, reset),
  );
  const byId = (id) => bar.querySelector(`#${id}`);
  /** The AuditFilter of the bar; From and To are wall times in the tenant's zone. */
  const filters = () => ({
    operations: byId("f-operation").value ? [byId("f-operation").value] : null,
    targetKind: byId("f-kind").value || null,
    targetId: target?.id ?? null,
    actorKeyId: actor?.keyId ?? null,
    since: zonedToIso(byId("f-since").value, tz),
    until: zonedToIso(byId("f-until").value, tz),
  });
  const narrowed = (f) => Object.values(f).some((value) => value !== null);

  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  // A filtered page reads for about a second; one that ended early says how far back it looked.
  const searchNote = h("p", { class: "muted", role: "status", hidden: true });
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table audit-table", id: "audit-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          [inZone("When", tz), "Who", "What", "Changes"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      tbody,
    ),
  );
  let cursor = null;
  let current = filters(); // the filter of the rows shown, which Load more continues

  function row(entry) {
    const who = entry.actor.role ? `${entry.actor.label} (${entry.actor.role})` : entry.actor.label;
    const what = targetText(entry.target);
    return h(
      "tr",
      { dataset: { id: entry.id, operation: entry.operation } },
      h("td", { class: "nowrap mono-num" }, formatTime(entry.at, tz)),
      h(
        "td",
        {},
        entry.actor.keyId
          ? h(
              "button",
              {
                type: "button",
                class: "link",
                title: `Show only the changes by ${entry.actor.label}`,
                onclick: () => pinActor(entry.actor),
              },
              who,
            )
          : who,
      ),
      h(
        "td",
        {},
        h("strong", {}, entry.operation),
        h("br"),
        h(
          "button",
          {
            type: "button",
            class: "link",
            title: `Show only the changes to ${what}`,
            onclick: () => pinTarget(entry.target),
          },
          what,
        ),
      ),
      h("td", {}, changeList(entry.changes)),
    );
  }

  const fetchPage = (f, after) =>
    gql(
      `query($f: AuditFilter, $n: Int, $after: String) {
        auditLog(filter: $f, first: $n, after: $after) { items { ${ENTRY_FIELDS} } nextCursor note } }`,
      { f, n: PAGE, after },
    ).then((data) => data.auditLog);

  function show(auditLog, f, append) {
    if (!append) clear(tbody);
    auditLog.items.forEach((entry) => tbody.append(row(entry)));
    current = f;
    cursor = auditLog.nextCursor;
    more.hidden = !cursor;
    searchNote.hidden = !auditLog.note;
    searchNote.textContent = auditLog.note ? `${auditLog.note[0].toUpperCase()}${auditLog.note.slice(1)}.` : "";
    empty.textContent = !narrowed(f)
      ? "No changes recorded yet."
      : cursor
        ? "No changes match these filters among the entries searched so far."
        : "No changes match these filters.";
    empty.hidden = tbody.children.length > 0;
    table.hidden = !empty.hidden;
    labelCells(view);
  }

  // A reply to filters changed since is dropped; an error leaves the rows as they were.
  let loads = 0;
  async function load(append = false) {
    const f = append ? current : filters();
    const seq = append ? loads : ++loads;
    try {
      const auditLog = await fetchPage(f, append ? cursor : null);
      if (seq === loads) show(auditLog, f, append);
    } catch (error) {
      if (seq === loads) toast(error.message, "error");
    }
  }

  const pin = (text, unpin) =>
    h(
      "button",
      {
        type: "button",
        class: "chip chip-pin",
        "aria-label": `Remove filter ${text}`,
        title: `Remove filter ${text}`,
        onclick: () => {
          unpin();
          changed();
          reset.focus(); // the pin is gone
        },
      },
      text,
      icon("x"),
    );

  function changed() {
    clear(
      pins,
      target ? pin(target.text, () => (target = null)) : null,
      actor ? pin(`by ${actor.label}`, () => (actor = null)) : null,
    );
    load();
  }

  function pinTarget(t) {
    byId("f-kind").value = t.kind;
    target = t.id === null ? null : { id: t.id, text: targetText(t) };
    changed();
  }

  function pinActor(a) {
    actor = { keyId: a.keyId, label: a.label };
    changed();
  }

  bar.addEventListener("change", (e) => {
    if (e.target.id === "f-kind") target = null; // a target is one of its kind
    changed();
  });
  bar.addEventListener("submit", (e) => {
    e.preventDefault();
    changed();
  });
  reset.addEventListener("click", () => {
    bar.reset();
    target = null;
    actor = null;
    changed();
  });
  more.addEventListener("click", () => busy(more, () => load(true)));

  show(await fetchPage(current, null), current, false);
  clear(
    view,
    pageHeader("Audit log"),
    h(
      "p",
      { class: "muted" },
      "Every change to actions, events, settings, parameters, keys and the tenant, newest first. Secrets read ********.",
    ),
    bar,
    empty,
    table,
    searchNote,
    h("p", {}, more),
  );
}
