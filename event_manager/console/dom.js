// Small DOM helpers: elements, icons, dialogs, field errors, notices.
// Every text from the API goes in through textContent, never as HTML.

/** h("button", {class: "primary", onclick: f}, "Save") */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "indeterminate") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Feather icons (MIT), drawn with a 24×24 stroke grid.
const ICONS = {
  cog: [
    ["circle", { cx: 12, cy: 12, r: 3 }],
    [
      "path",
      {
        d: "M19.4 15a1.65 1.65 0 0 0 .33 1.82l.06.06a2 2 0 0 1 0 2.83 2 2 0 0 1-2.83 0l-.06-.06a1.65 1.65 0 0 0-1.82-.33 1.65 1.65 0 0 0-1 1.51V21a2 2 0 0 1-2 2 2 2 0 0 1-2-2v-.09A1.65 1.65 0 0 0 9 19.4a1.65 1.65 0 0 0-1.82.33l-.06.06a2 2 0 0 1-2.83 0 2 2 0 0 1 0-2.83l.06-.06a1.65 1.65 0 0 0 .33-1.82 1.65 1.65 0 0 0-1.51-1H3a2 2 0 0 1-2-2 2 2 0 0 1 2-2h.09A1.65 1.65 0 0 0 4.6 9a1.65 1.65 0 0 0-.33-1.82l-.06-.06a2 2 0 0 1 0-2.83 2 2 0 0 1 2.83 0l.06.06a1.65 1.65 0 0 0 1.82.33H9a1.65 1.65 0 0 0 1-1.51V3a2 2 0 0 1 2-2 2 2 0 0 1 2 2v.09a1.65 1.65 0 0 0 1 1.51 1.65 1.65 0 0 0 1.82-.33l.06-.06a2 2 0 0 1 2.83 0 2 2 0 0 1 0 2.83l-.06.06a1.65 1.65 0 0 0-.33 1.82V9a1.65 1.65 0 0 0 1.51 1H21a2 2 0 0 1 2 2 2 2 0 0 1-2 2h-.09a1.65 1.65 0 0 0-1.51 1z",
      },
    ],
  ],
  edit: [["path", { d: "M17 3a2.828 2.828 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5L17 3z" }]],
  trash: [
    ["polyline", { points: "3 6 5 6 21 6" }],
    ["path", { d: "M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6m3 0V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2" }],
  ],
  play: [["polygon", { points: "5 3 19 12 5 21 5 3" }]],
  plus: [
    ["line", { x1: 12, y1: 5, x2: 12, y2: 19 }],
    ["line", { x1: 5, y1: 12, x2: 19, y2: 12 }],
  ],
  x: [
    ["line", { x1: 18, y1: 6, x2: 6, y2: 18 }],
    ["line", { x1: 6, y1: 6, x2: 18, y2: 18 }],
  ],
  lock: [
    ["rect", { x: 3, y: 11, width: 18, height: 11, rx: 2, ry: 2 }],
    ["path", { d: "M7 11V7a5 5 0 0 1 10 0v4" }],
  ],
  alert: [
    ["path", { d: "M10.29 3.86L1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z" }],
    ["line", { x1: 12, y1: 9, x2: 12, y2: 13 }],
    ["line", { x1: 12, y1: 17, x2: 12.01, y2: 17 }],
  ],
  upload: [
    ["path", { d: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4" }],
    ["polyline", { points: "17 8 12 3 7 8" }],
    ["line", { x1: 12, y1: 3, x2: 12, y2: 15 }],
  ],
  download: [
    ["path", { d: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4" }],
    ["polyline", { points: "7 10 12 15 17 10" }],
    ["line", { x1: 12, y1: 15, x2: 12, y2: 3 }],
  ],
  refresh: [
    ["polyline", { points: "23 4 23 10 17 10" }],
    ["path", { d: "M20.49 15a9 9 0 1 1-2.12-9.36L23 10" }],
  ],
  search: [
    ["circle", { cx: 11, cy: 11, r: 8 }],
    ["line", { x1: 21, y1: 21, x2: 16.65, y2: 16.65 }],
  ],
};

export function icon(name, label = null) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({
    viewBox: "0 0 24 24",
    width: 16,
    height: 16,
    fill: "none",
    stroke: "currentColor",
    "stroke-width": 2,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
    class: `icon icon-${name}`,
  }))
    svg.setAttribute(k, v);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const title = document.createElementNS(ns, "title");
    title.textContent = label;
    svg.append(title);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  for (const [tag, attrs] of ICONS[name]) {
    const part = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) part.setAttribute(k, v);
    svg.append(part);
  }
  return svg;
}

/** An icon-only button whose name is its label (for screen readers and tooltips). */
export function iconButton(name, label, onclick, cls = "") {
  return h(
    "button",
    { type: "button", class: `icon-button ${cls}`, title: label, "aria-label": label, onclick },
    icon(name),
  );
}

/** A page's Refresh button: runs ``load()`` with the button shown busy meanwhile. */
export function refreshButton(load) {
  return h(
    "button",
    { type: "button", class: "small", onclick: (e) => busy(e.currentTarget, () => load()) },
    icon("refresh"),
    " Refresh",
  );
}

let uid = 0;
export const nextId = (prefix = "f") => `${prefix}-${++uid}`;

/** A labelled control: <div class="field"><label>…</label>control<small>hint</small></div> */
export function field(label, control, hint = null) {
  control.id ||= nextId();
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintEl = h("small", { class: "hint", id: `${control.id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

/** An on/off switch: a checkbox with role=switch and a visible Yes/No. */
export function toggle(label, checked, attrs = {}) {
  const input = h("input", { type: "checkbox", role: "switch", checked, ...attrs });
  input.id ||= nextId();
  const state = h("span", { class: "switch-state", "aria-hidden": "true" }, checked ? "Yes" : "No");
  input.addEventListener("change", () => {
    state.textContent = input.checked ? "Yes" : "No";
  });
  const wrapper = h(
    "div",
    { class: "field field-switch" },
    h(
      "label",
      { for: input.id, class: "switch" },
      input,
      h("span", { class: "switch-track", "aria-hidden": "true" }),
      h("span", { class: "switch-label" }, label),
      state,
    ),
  );
  return { input, wrapper };
}

// --- dialogs -------------------------------------------------------------------------

/**
 * A modal <dialog>: Escape closes it (the browser's own behaviour), focus stays inside,
 * and it is removed from the page when closed. Returns {dialog, body, footer, close}.
 */
export function openDialog(title, { wide = false, onClose = () => {} } = {}) {
  const titleId = nextId("dlg");
  const body = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-footer" });
  const closeButton = iconButton("x", "Close", () => dialog.close());
  const dialog = h(
    "dialog",
    { class: wide ? "wide" : "", "aria-labelledby": titleId },
    h("header", { class: "dialog-header" }, h("h2", { id: titleId }, title), closeButton),
    body,
    footer,
  );
  dialog.addEventListener("close", () => {
    dialog.remove();
    onClose(dialog.returnValue);
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, footer, close: (value = "") => dialog.close(value) };
}

/** Resolves true when the user confirms. */
export function confirmDialog(title, message, { confirm = "Delete", danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const { body, footer, close } = openDialog(title, { onClose: () => resolve(answer) });
    body.append(h("p", {}, message));
    const yes = h(
      "button",
      {
        type: "button",
        class: danger ? "danger" : "primary",
        onclick: () => {
          answer = true;
          close();
        },
      },
      confirm,
    );
    footer.append(h("button", { type: "button", onclick: () => close() }, "Cancel"), yes);
    yes.focus();
  });
}

// --- errors next to fields -----------------------------------------------------------

export function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((el) => el.remove());
  form.querySelectorAll("[aria-invalid]").forEach((el) => {
    el.removeAttribute("aria-invalid");
    const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.startsWith("err-"));
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  });
}

/** The control named by an error's field ("input.headers[1].key"), or its nearest parent. */
function controlFor(form, path) {
  let current = path;
  while (current) {
    const el = form.querySelector(`[data-field="${CSS.escape(current)}"]`);
    if (el) return { el, exact: current === path };
    const cut = Math.max(current.lastIndexOf("."), current.lastIndexOf("["));
    current = cut > 0 ? current.slice(0, cut) : "";
  }
  return null;
}

function labelOf(el) {
  if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
  const label = el.labels?.[0];
  return label ? label.textContent.trim() : null;
}

/** The API's message, with the input path at its start read as the field's label. */
function readable(message, path, el) {
  const label = el ? labelOf(el) : null;
  if (path && message.startsWith(path) && label) return label + message.slice(path.length);
  return message.replace(/^input\./, "");
}

/** Takes one control's error away: its note, aria-invalid and the note's id. */
function unmark(el, note) {
  note.remove();
  el.removeAttribute("aria-invalid");
  const ids = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== note.id);
  if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
  else el.removeAttribute("aria-describedby");
}

/** The note of one error next to its control; it goes once the control's value changes. */
function markField(el, message) {
  const id = nextId("err");
  const note = h("p", { class: "field-error", id, role: "alert" }, icon("alert"), " ", message);
  // Right under the control: after its row, or before the field's hint.
  const slot = el.closest("[data-error-slot], .field-switch, .field-check") || el;
  slot.after(note);
  el.setAttribute("aria-invalid", "true");
  el.setAttribute("aria-describedby", [el.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
  const details = el.closest("details");
  if (details) details.open = true;
  // A refusal is about the value that was sent: once it is edited, the note is stale.
  const changed = () => {
    if (note.isConnected) unmark(el, note);
    el.removeEventListener("input", changed);
    el.removeEventListener("change", changed);
  };
  el.addEventListener("input", changed);
  el.addEventListener("change", changed);
  return note;
}

/**
 * Shows ApiErrors in `form`, all at once: each next to the control its `field` names
 * (marked aria-invalid), or at the top of the form when no control matches. The first
 * control named is focused. Returns the notes.
 */
export function showErrors(form, errors) {
  clearErrors(form);
  const notes = [];
  let first = null;
  for (const error of errors) {
    const found = error.field ? controlFor(form, error.field) : null;
    const message = readable(error.message, error.field, found?.el);
    if (found) {
      notes.push(markField(found.el, message));
      first ||= found.el;
      continue;
    }
    const note = h(
      "div",
      { class: "form-error", role: "alert" },
      icon("alert"),
      " ",
      message,
      error.code && error.code !== "BAD_USER_INPUT" ? h("code", {}, error.code) : null,
    );
    form.prepend(note);
    notes.push(note);
  }
  if (first) first.focus();
  return notes;
}

/** Shows one ApiError in `form` (see showErrors). */
export function showError(form, error) {
  return showErrors(form, [error])[0];
}

/** "1 request", "2 requests"; `many` for a plural that is not `one` + "s". */
export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

// --- notices ---------------------------------------------------------------------------

export function toast(message, kind = "ok") {
  const region = document.getElementById("toasts");
  const note = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  region.append(note);
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 3500);
}

/** An error box for a page that could not load. */
export function errorBox(error, ...extra) {
  return h(
    "div",
    { class: "banner banner-error", role: "alert" },
    icon("alert"),
    h("div", {}, h("strong", {}, error.message), error.code ? h("code", {}, error.code) : null, ...extra),
  );
}

/** Busy state for a submit button while a request runs. */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

export function debounce(fn, ms = 250) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// --- formatting ------------------------------------------------------------------------

/** The wall clock of `date` in `timezone`: {year, month, day, hour, minute, second}, as
 * two-digit strings (four for the year). Throws a RangeError for an unknown zone. */
function wallClock(date, timezone) {
  return Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", {
      timeZone: timezone || "UTC",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
}

/** "2026-11-29 07:09:48" in the tenant's time zone. */
export function formatTime(iso, timezone) {
  if (!iso) return "";
  const date = new Date(iso);
  try {
    const c = wallClock(date, timezone);
    return `${c.year}-${c.month}-${c.day} ${c.hour}:${c.minute}:${c.second}`;
  } catch {
    return date.toISOString();
  }
}

/**
 * The instant a datetime-local value names in the tenant's time zone, as the API takes it:
 * "2026-12-04T09:00" in Asia/Tokyo is "2026-12-04T00:00:00.000Z". An empty value is
 * null; an unknown zone reads as UTC, as formatTime shows times then.
 */
export function zonedToIso(local, timezone) {
  if (!local) return null;
  const asUtc = Date.parse(`${local}Z`);
  if (Number.isNaN(asUtc)) return null;
  const offset = (at) => {
    const c = wallClock(new Date(at), timezone);
    return Date.UTC(c.year, c.month - 1, c.day, c.hour, c.minute, c.second) - Math.floor(at / 1000) * 1000;
  };
  try {
    // The zone's offset at the wall time read as UTC, then at the instant that gives: the
    // second look is right across a change of offset (summer time) between the two.
    const guess = asUtc - offset(asUtc);
    return new Date(asUtc - offset(guess)).toISOString();
  } catch {
    return new Date(asUtc).toISOString();
  }
}

/** "Time (Europe/Sarajevo)": the label of times shown in the tenant's zone, naming it as
 * the API's messages do ("retry 2 of 5 at 08:38:28 (Europe/Sarajevo)"). */
export function inZone(label, timezone) {
  return `${label} (${timezone || "UTC"})`;
}

/** Where an imported action came from, as its `origin` records it ("postman:Wise Cards
 * API" → "Imported from Postman collection Wise Cards API", "master:…" → "Copied from
 * Master"); null for an action made here. */
export function originText(origin) {
  if (!origin) return null;
  const [kind, ...rest] = origin.split(":");
  const name = rest.join(":");
  if (kind === "postman") return name ? `Imported from Postman collection ${name}` : "Imported from Postman";
  if (kind === "master") return "Copied from Master";
  return origin;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status.toLowerCase()}` }, status);
}

export const EVENT_NAMES = {
  INCOMING_CALL: "Incoming Call",
  ANSWERED_CALL: "Answered Call",
  UNANSWERED_CALL: "Unanswered Call",
  HANGUP: "Hangup",
  RINGING: "Ringing",
};

export function pageHeader(title, ...tools) {
  return h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, title), h("div", { class: "toolbar" }, tools));
}

/**
 * Gives each body cell of a list (`.table-wrap > table`) its column's heading as
 * `data-label`: on a narrow screen a row is a card of "label value" lines (style.css,
 * "lists as cards"). A heading that only screen readers read (Tools) gives no label.
 */
export function labelCells(root) {
  for (const table of root.querySelectorAll(".table-wrap > table")) {
    const labels = [...(table.tHead?.rows[0]?.cells || [])].map((th) =>
      th.querySelector(".sr-only") ? "" : th.textContent.trim(),
    );
    for (const body of table.tBodies) {
      for (const row of body.rows) {
        [...row.cells].forEach((cell, i) => {
          if (labels[i] && cell.dataset.label !== labels[i]) cell.dataset.label = labels[i];
        });
      }
    }
  }
}
