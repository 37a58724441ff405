// Audit log: who changed what in the tenant, newest first (TENANT_ADMIN and SYSTEM_ADMIN).

import { gql } from "../api.js";
import { app } from "../app.js";
import { clear, formatTime, h, labelCells, pageHeader, toast } from "../dom.js";

const PAGE = 50;
const ENTRY_FIELDS =
  "id at operation target { kind id name } actor { keyId label role } changes { field before after cut }";

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

export async function auditLog(view) {
  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty" }, "No changes recorded yet.");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "audit-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Who"), h("th", {}, "What"), h("th", {}, "Changes"))),
      tbody,
    ),
  );
  let cursor = null;

  function row(entry) {
    const who = entry.actor.role ? `${entry.actor.label} (${entry.actor.role})` : entry.actor.label;
    return h(
      "tr",
      { dataset: { id: entry.id, operation: entry.operation } },
      h("td", { class: "nowrap mono-num" }, formatTime(entry.at, app.settings.timezone)),
      h("td", {}, who),
      h("td", {}, h("strong", {}, entry.operation), h("br"), h("span", { class: "muted" }, targetText(entry.target))),
      h("td", {}, changeList(entry.changes)),
    );
  }

  async function load(append) {
    const { auditLog } = await gql(
      `query($n: Int, $after: String) { auditLog(first: $n, after: $after) { items { ${ENTRY_FIELDS} } nextCursor } }`,
      { n: PAGE, after: append ? cursor : null },
    );
    if (!append) clear(tbody);
    auditLog.items.forEach((entry) => tbody.append(row(entry)));
    cursor = auditLog.nextCursor;
    more.hidden = !cursor;
    empty.hidden = tbody.children.length > 0;
    table.hidden = !empty.hidden;
    labelCells(view);
  }

  more.addEventListener("click", () => load(true).catch((error) => toast(error.message, "error")));
  await load(false);
  clear(
    view,
    pageHeader("Audit log"),
    h("p", { class: "muted" }, "Every change to actions, events, settings, parameters, keys and the tenant, newest first. Secrets read ********."),
    empty,
    table,
    h("p", {}, more),
  );
}
