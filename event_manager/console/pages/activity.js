// Events → Activity Monitor: every delivery, live over the `activity` subscription.

import { ACTIVITY_FIELDS, gql, subscribe } from "../api.js";
import { app } from "../app.js";
import {
  busy,
  clear,
  debounce,
  EVENT_NAMES,
  formatTime,
  h,
  icon,
  inZone,
  openDialog,
  pageHeader,
  refreshButton,
  statusBadge,
  toast,
} from "../dom.js";
import { filterBar, filterSelect } from "../widgets.js";
import { openParameterDialog } from "./parameters.js";
import { openTestDialog } from "./test.js";

const STATUSES = ["QUEUED", "SENDING", "RETRYING", "SUCCEEDED", "FAILED", "SKIPPED", "HELD", "EXPIRED"];
const PAGE = 50;

export async function activityMonitor(view) {
  const { events } = await gql("{ events { type name actions { id name method url } } }");
  const rows = new Map(); // id → activity
  const elements = new Map(); // id → <tr>, kept while the row changes
  let cursor = null;
  let detail = null; // {id, render} of the open detail dialog

  // --- filters ---
  const bar = filterBar(
    "Filter activity",
    filterSelect("Event", "f-event", Object.entries(EVENT_NAMES)),
    filterSelect(
      "Status",
      "f-status",
      STATUSES.map((s) => [s, s.charAt(0) + s.slice(1).toLowerCase()]),
    ),
    filterSelect("Source", "f-source", [
      ["SYSTEM", "System"],
      ["TEST", "Test"],
    ]),
    h(
      "div",
      { class: "field field-grow" },
      h("label", { for: "f-search" }, "Search"),
      h("input", { id: "f-search", type: "search", placeholder: "Action name or message", autocomplete: "off" }),
    ),
  );
  const byId = (id) => bar.querySelector(`#${id}`);
  const filters = () => ({
    event: byId("f-event").value,
    status: byId("f-status").value,
    source: byId("f-source").value,
    search: byId("f-search").value.trim(),
  });
  const apiFilter = (f) => ({
    events: f.event ? [f.event] : null,
    statuses: f.status ? [f.status] : null,
    source: f.source || null,
    search: f.search || null,
  });
  /** The same test as the server's, for rows that change while shown. */
  const matches = (a, f) =>
    (!f.event || a.event === f.event) &&
    (!f.status || a.status === f.status) &&
    (!f.source || a.source === f.source) &&
    (!f.search || `${a.actionName || ""}\n${a.message}`.toLowerCase().includes(f.search.toLowerCase()));

  // --- table ---
  const tbody = h("tbody", {});
  const empty = h("p", { class: "empty" }, "No activity yet. Press Test on an event to send one.");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  // A search reads about a second of history per page, then says how far back it looked.
  const searchNote = h("p", { class: "muted", role: "status", hidden: true });
  const liveState = h("span", { class: "live live-connecting", role: "status" }, "Connecting…");
  const count = h("span", { class: "muted" });

  function rowElement(a) {
    const tr = elements.get(a.id) || h("tr", { class: "clickable" });
    elements.set(a.id, tr);
    tr.dataset.id = a.id;
    tr.dataset.status = a.status;
    const open = h(
      "button",
      {
        type: "button",
        class: "small link",
        "aria-label": `Details of ${a.actionName || a.event} at ${formatTime(a.createdAt, app.settings.timezone)}`,
        onclick: (e) => {
          e.stopPropagation();
          openDetail(a.id);
        },
      },
      "Details",
    );
    clear(
      tr,
      h("td", { class: "nowrap mono-num" }, formatTime(a.createdAt, app.settings.timezone)),
      h("td", { class: "nowrap" }, EVENT_NAMES[a.event] || a.event),
      h("td", {}, h("span", { class: `badge source-${a.source.toLowerCase()}` }, a.source)),
      h("td", {}, a.actionName || h("span", { class: "muted" }, "—")),
      h("td", {}, statusBadge(a.status)),
      h("td", { class: "num" }, a.attempts),
      h("td", { class: "num" }, a.httpStatus ?? ""),
      h("td", { class: "message" }, a.message),
      h(
        "td",
        { class: "col-tools" },
        a.status === "FAILED" && app.canWrite
          ? h(
              "button",
              {
                type: "button",
                class: "small",
                onclick: (e) => {
                  e.stopPropagation();
                  retry(a.id, e.currentTarget);
                },
              },
              icon("refresh"),
              " Retry",
            )
          : null,
        open,
      ),
    );
    tr.onclick = () => openDetail(a.id);
    return tr;
  }

  function render() {
    const ordered = [...rows.values()].sort((x, y) =>
      y.createdAt > x.createdAt ? 1 : y.createdAt < x.createdAt ? -1 : y.id > x.id ? 1 : -1,
    );
    const wanted = ordered.map(rowElement);
    // Move only what moved, so rows keep their DOM node (and focus) as they change.
    wanted.forEach((tr, i) => {
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    while (tbody.children.length > wanted.length) tbody.lastElementChild.remove();
    for (const id of [...elements.keys()]) if (!rows.has(id)) elements.delete(id);
    empty.hidden = rows.size > 0;
    count.textContent = rows.size ? `${rows.size} shown` : "";
    if (detail && rows.has(detail.id)) detail.render(rows.get(detail.id));
  }

  /** Keeps the newer of two versions of a row: updates may arrive out of order. */
  function upsert(a, f = filters()) {
    const old = rows.get(a.id);
    if (old && old.updatedAt > a.updatedAt) return;
    if (matches(a, f)) rows.set(a.id, a);
    else rows.delete(a.id);
  }

  let loads = 0;
  async function load(append = false) {
    const f = filters();
    const seq = append ? loads : ++loads;
    try {
      const { activity } = await gql(
        `query($f: ActivityFilter, $n: Int, $after: String) {
          activity(filter: $f, first: $n, after: $after) { items { ${ACTIVITY_FIELDS} } nextCursor note } }`,
        { f: apiFilter(f), n: PAGE, after: append ? cursor : null },
      );
      if (seq !== loads) return; // the filters changed meanwhile
      if (!append) {
        const fresh = new Map(activity.items.map((a) => [a.id, a]));
        const newest = activity.items[0]?.createdAt || "";
        for (const [id, a] of rows) {
          // Keep what arrived live while the page loaded: newer versions, and newer rows.
          if (fresh.has(id) ? a.updatedAt > fresh.get(id).updatedAt : a.createdAt > newest && matches(a, f))
            fresh.set(id, a);
        }
        rows.clear();
        fresh.forEach((a, id) => rows.set(id, a));
      } else {
        activity.items.forEach((a) => upsert(a, f));
      }
      cursor = activity.nextCursor;
      more.hidden = !cursor;
      searchNote.hidden = !activity.note;
      searchNote.textContent = activity.note ? `${activity.note[0].toUpperCase()}${activity.note.slice(1)}.` : "";
      render();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  // --- live ---
  let stop = () => {};
  function listen() {
    stop();
    const f = filters();
    // Status and search are checked here, so that a row leaving the filter is taken out.
    stop = subscribe(
      `subscription($f: ActivityFilter) { activity(filter: $f) { ${ACTIVITY_FIELDS} } }`,
      { f: { events: f.event ? [f.event] : null, source: f.source || null } },
      {
        onData: (data) => {
          upsert(data.activity);
          render();
        },
        onReady: () => load(),
        onState: (state) => {
          liveState.className = `live live-${state}`;
          liveState.textContent = { connecting: "Connecting…", live: "Live", offline: "Offline, reconnecting…" }[state];
        },
        onError: (error) => toast(`Live updates stopped: ${error.message}`, "error"),
      },
    );
  }

  function changed() {
    rows.clear();
    render();
    load();
    listen();
  }
  bar.addEventListener("change", (e) => {
    if (e.target.id !== "f-search") changed();
  });
  byId("f-search").addEventListener("input", debounce(changed, 300));
  bar.addEventListener("submit", (e) => {
    e.preventDefault();
    changed();
  });
  more.addEventListener("click", () => busy(more, () => load(true)));

  async function retry(id, button) {
    await busy(button, async () => {
      try {
        const { retryActivity } = await gql(`mutation($id: ID!) { retryActivity(id: $id) { ${ACTIVITY_FIELDS} } }`, {
          id,
        });
        upsert(retryActivity);
        render();
        toast("Sent again as a new attempt.");
      } catch (error) {
        toast(error.message, "error");
      }
    });
  }

  function openDetail(id) {
    const a = rows.get(id);
    if (!a) return;
    const { body, footer, close } = openDialog("Delivery", {
      wide: true,
      onClose: () => {
        detail = null;
      },
    });
    const renderDetail = (row) => {
      clear(body, detailView(row));
      clear(
        footer,
        row.status === "FAILED" && app.canWrite
          ? h(
              "button",
              { type: "button", class: "primary", onclick: (e) => retry(row.id, e.currentTarget) },
              icon("refresh"),
              " Retry",
            )
          : null,
        h("button", { type: "button", onclick: () => close() }, "Close"),
      );
    };
    detail = { id, render: renderDetail };
    renderDetail(a);
    footer.lastElementChild.focus();
  }

  const tests = app.canWrite
    ? h(
        "div",
        { class: "test-bar", role: "group", "aria-label": "Test an event" },
        h("span", { class: "muted" }, "Test:"),
        events.map((event) =>
          h(
            "button",
            {
              type: "button",
              class: "small",
              "aria-label": `Test ${event.name}`,
              onclick: () =>
                openTestDialog(event, (result) => {
                  result.activities.forEach((row) => upsert(row));
                  render();
                  toast(
                    result.accepted
                      ? `Test of ${event.name} sent.`
                      : `Test of ${event.name} recorded: ${result.reason || "nothing to send"}.`,
                  );
                }),
            },
            icon("play"),
            ` ${event.name}`,
          ),
        ),
      )
    : null;

  clear(
    view,
    pageHeader(
      "Activity Monitor",
      liveState,
      refreshButton(load),
    ),
    h(
      "p",
      { class: "lead" },
      "Every event triggered from the system or tested here, with the status and message of each action it sent. New rows appear and change as they happen.",
    ),
    tests,
    bar,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table activity-table", id: "activity-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [inZone("Time", app.settings.timezone), "Event", "Source", "Action", "Status", "Attempts", "HTTP", "Message"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Tools")),
          ),
        ),
        tbody,
      ),
    ),
    empty,
    h("div", { class: "list-footer" }, count, searchNote, more),
  );
  render();
  load();
  listen();
  return () => stop();
}

function detailView(a) {
  const tz = app.settings.timezone;
  const item = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  const request = a.request;
  return h(
    "div",
    { class: "detail", dataset: { id: a.id, status: a.status } },
    h("div", { class: "detail-status" }, statusBadge(a.status), h("span", { class: "detail-message" }, a.message)),
    h(
      "dl",
      { class: "facts" },
      item("Event", EVENT_NAMES[a.event] || a.event),
      item("Source", a.source),
      item(
        "Action",
        a.actionId ? h("a", { href: `#/actions/${a.actionId}` }, a.actionName || a.actionId) : a.actionName || "—",
      ),
      item("Attempts", String(a.attempts)),
      item("HTTP status", a.httpStatus == null ? "—" : String(a.httpStatus)),
      item("Trigger", h("code", {}, a.triggerId)),
      item(inZone("Created", tz), formatTime(a.createdAt, tz)),
      item(inZone("Updated", tz), formatTime(a.updatedAt, tz)),
    ),
    h("h3", {}, "Request"),
    request
      ? [
          h(
            "p",
            { class: "request-line" },
            h("span", { class: `method method-${request.method.toLowerCase()}` }, request.method),
            " ",
            h("code", { class: "break" }, request.url),
          ),
          request.headers.length
            ? h(
                "table",
                { class: "table compact" },
                h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Header"), h("th", { scope: "col" }, "Value"))),
                h(
                  "tbody",
                  {},
                  request.headers.map((kv) =>
                    h(
                      "tr",
                      {},
                      h("td", {}, h("code", {}, kv.key)),
                      h("td", {}, h("code", { class: "break" }, kv.value)),
                    ),
                  ),
                ),
              )
            : h("p", { class: "muted" }, "No headers."),
          h("h3", {}, "Request body"),
          request.body
            ? h("pre", { class: "snippet request-body" }, request.body)
            : h("p", { class: "muted" }, "No body."),
        ]
      : h("p", { class: "muted" }, "Not sent yet."),
    h("h3", {}, "Response"),
    a.responseSnippet
      ? h("pre", { class: "snippet response-body" }, a.responseSnippet)
      : h("p", { class: "muted" }, "No response body."),
    h("h3", {}, "Unresolved parameters"),
    a.unresolvedParameters.length
      ? [
          h(
            "p",
            { class: "muted" },
            "These placeholders had no value and were sent as written. Define them as parameters:",
          ),
          h(
            "ul",
            { class: "chips" },
            a.unresolvedParameters.map((tag) =>
              h(
                "li",
                {},
                app.canWrite
                  ? h(
                      "button",
                      {
                        type: "button",
                        class: "chip chip-button",
                        onclick: () => openParameterDialog({ tag }, () => toast(`Parameter ${tag} added.`)),
                      },
                      icon("plus"),
                      ` {{${tag}}}`,
                    )
                  : h("span", { class: "chip" }, `{{${tag}}}`),
              ),
            ),
          ),
        ]
      : h("p", { class: "muted" }, "None."),
    a.emptyParameters.length
      ? h(
          "p",
          { class: "sent-empty" },
          `Sent empty: ${a.emptyParameters.join(", ")}`,
          h("span", { class: "muted" }, " (the trigger gave these call parameters no value)"),
        )
      : null,
  );
}
