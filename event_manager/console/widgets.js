// Form widgets shared by the pages: key/value rows, a filterable checkbox list, and the
// filter bar of a list (the Activity Monitor's, the Audit log's).

import { h, icon, iconButton, nextId } from "./dom.js";

/**
 * Editable key/value rows (query, headers, body fields). `path` is the input path the API
 * names in errors ("input.headers"); `values()` returns the non-empty rows and gives each
 * kept row's inputs the path of its index in what is sent ("input.headers[1].key").
 */
export function kvEditor(
  rows,
  { path, noun, keyPlaceholder = "key", valuePlaceholder = "value", keyList = null, disabled = false },
) {
  const list = h("div", { class: "kv-rows" });
  const addButton = h(
    "button",
    { type: "button", class: "small", disabled, onclick: () => addRow({ key: "", value: "", enabled: true }, true) },
    icon("plus"),
    ` Add ${noun}`,
  );
  const empty = h("p", { class: "muted kv-empty" }, `No ${noun}s.`);
  const el = h("div", { class: "kv", "data-field": path, tabindex: "-1" }, list, empty, addButton);

  // Error notes may stand between the rows (dom.showError): count only the rows.
  const items = () => list.querySelectorAll(":scope > .kv-row");

  function renumber() {
    items().forEach((row, i) => {
      row.querySelector(".kv-key").setAttribute("aria-label", `${cap(noun)} ${i + 1} key`);
      row.querySelector(".kv-value").setAttribute("aria-label", `${cap(noun)} ${i + 1} value`);
      row.querySelector(".kv-on").setAttribute("aria-label", `Send ${noun} ${i + 1}`);
      row.querySelector(".kv-remove").setAttribute("aria-label", `Remove ${noun} ${i + 1}`);
      row.querySelector(".kv-remove").title = `Remove ${noun} ${i + 1}`;
    });
    empty.hidden = items().length > 0;
  }

  function addRow(row, focus = false) {
    const on = h("input", {
      type: "checkbox",
      class: "kv-on",
      checked: row.enabled !== false,
      disabled,
      title: "Send this row",
    });
    const key = h("input", {
      type: "text",
      class: "kv-key",
      value: row.key,
      placeholder: keyPlaceholder,
      disabled,
      autocomplete: "off",
      spellcheck: "false",
      list: keyList,
    });
    const value = h("input", {
      type: "text",
      class: "kv-value",
      value: row.value,
      placeholder: valuePlaceholder,
      disabled,
      autocomplete: "off",
      spellcheck: "false",
    });
    const remove = iconButton(
      "x",
      "Remove",
      () => {
        const rows = [...items()];
        const at = rows.indexOf(item);
        const next = rows[at + 1] || rows[at - 1];
        if (item.nextElementSibling?.classList.contains("field-error")) item.nextElementSibling.remove();
        item.remove();
        renumber();
        (next?.querySelector(".kv-key") || addButton).focus();
      },
      "kv-remove",
    );
    remove.disabled = disabled;
    const item = h("div", { class: "kv-row", "data-error-slot": "" }, on, key, value, remove);
    list.append(item);
    renumber();
    if (focus) key.focus();
  }

  rows.forEach((row) => addRow(row));
  renumber();

  function values() {
    const out = [];
    for (const row of items()) {
      const [on, key, value] = row.querySelectorAll("input");
      row.querySelectorAll("[data-field]").forEach((x) => x.removeAttribute("data-field"));
      row.removeAttribute("data-field");
      if (!key.value && !value.value) continue;
      const i = out.length;
      row.dataset.field = `${path}[${i}]`;
      key.dataset.field = `${path}[${i}].key`;
      value.dataset.field = `${path}[${i}].value`;
      out.push({ key: key.value.trim(), value: value.value, enabled: on.checked });
    }
    return out;
  }
  return { el, values };
}

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * A filterable list of checkboxes: the console's multi-select. `items` are
 * {id, label, detail, note, disabled}; `selected` a set of ids. With `selectAll`, a
 * "Select all" box ticks every item that can be chosen. With `search` (the search box's
 * label, e.g. "Search actions"), a labelled search box stands above a long list and the
 * chosen items are listed as chips that stay in view, with a button each to take one
 * out, whatever the search hides. Returns {el, selectedIds()}.
 */
export function checkList(
  items,
  selected,
  {
    label,
    path = null,
    empty = "Nothing to choose from.",
    disabled = false,
    selectAll = false,
    selectAllLabel = "Select all",
    search = null,
    onChange = () => {},
  },
) {
  const legendId = nextId("lg");
  const count = h("span", { class: "muted check-count", "aria-live": "polite" });
  const filter = h("input", {
    type: "search",
    id: nextId("search"),
    placeholder: "Filter…",
    "aria-label": search || `Filter ${label.toLowerCase()}`,
    autocomplete: "off",
  });
  const noMatch = h("p", { class: "muted", hidden: true }, "Nothing matches the search.");
  const chosen = h("ul", { class: "chips check-chosen", "aria-label": "Chosen" });
  const labels = new Map(items.map((item) => [item.id, item.label]));
  const list = h("ul", { class: "check-list", role: "list" });
  const boxes = [];
  for (const item of items) {
    const box = h("input", {
      type: "checkbox",
      value: item.id,
      checked: selected.has(item.id),
      disabled: disabled || item.disabled,
      id: nextId("ck"),
    });
    box.addEventListener("change", update);
    boxes.push(box);
    list.append(
      h(
        "li",
        {
          class: item.disabled ? "unavailable" : "",
          dataset: { text: `${item.label} ${item.detail || ""}`.toLowerCase() },
        },
        h(
          "label",
          { for: box.id },
          box,
          h("span", { class: "check-label" }, item.label),
          item.detail ? h("span", { class: "check-detail" }, item.detail) : null,
          item.note ? h("span", { class: "check-note" }, item.note) : null,
        ),
      ),
    );
  }
  const all = h("input", { type: "checkbox", id: nextId("ck"), disabled });
  all.addEventListener("change", () => {
    for (const box of boxes) if (!box.disabled && !box.closest("li").hidden) box.checked = all.checked;
    update();
  });
  filter.addEventListener("input", () => {
    const text = filter.value.toLowerCase();
    let shown = 0;
    for (const li of list.children) {
      li.hidden = Boolean(text) && !li.dataset.text.includes(text);
      if (!li.hidden) shown += 1;
    }
    noMatch.hidden = shown > 0;
  });
  // Enter in the filter ticks the only match instead of submitting the form.
  filter.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const visible = [...list.children].filter((li) => !li.hidden);
    if (visible.length === 1) {
      const box = visible[0].querySelector("input");
      if (!box.disabled) box.checked = !box.checked;
      update();
    }
  });
  const order = [...selected];
  function update() {
    for (const box of boxes) {
      const at = order.indexOf(box.value);
      if (box.checked && at < 0) order.push(box.value);
      if (!box.checked && at >= 0) order.splice(at, 1);
    }
    const choosable = boxes.filter((b) => !b.disabled);
    const ticked = choosable.filter((b) => b.checked).length;
    all.checked = ticked > 0 && ticked === choosable.length;
    all.indeterminate = ticked > 0 && ticked < choosable.length;
    count.textContent = `${order.length} selected`;
    if (search) showChosen();
    onChange(order);
  }
  function showChosen() {
    chosen.replaceChildren(
      ...order.map((id) => {
        const box = boxes.find((b) => b.value === id);
        const name = labels.get(id) ?? id;
        return h(
          "li",
          { class: "chip" },
          name,
          box && !box.disabled
            ? iconButton(
                "x",
                `Remove ${name}`,
                () => {
                  box.checked = false;
                  update();
                  (chosen.querySelector("button") || filter).focus();
                },
                "chip-remove",
              )
            : null,
        );
      }),
    );
  }
  update();
  const el = h(
    "fieldset",
    { class: "check-fieldset", "aria-labelledby": legendId, "data-field": path, tabindex: "-1" },
    h("legend", { id: legendId }, label, " ", count),
    items.length
      ? [
          search ? chosen : null,
          search && items.length > 6
            ? h("div", { class: "field" }, h("label", { for: filter.id }, search), filter)
            : items.length > 6
              ? filter
              : null,
          selectAll ? h("label", { class: "select-all", for: all.id }, all, ` ${selectAllLabel}`) : null,
          list,
          noMatch,
        ]
      : h("p", { class: "muted" }, empty),
  );
  return { el, selectedIds: () => [...order] };
}

/** A list's filter bar: its fields side by side, wrapping on a narrow screen. */
export function filterBar(label, ...fields) {
  return h("form", { class: "filters", role: "search", "aria-label": label }, fields);
}

/** A select of a filter bar: "All" (the value "") first, then `options` as [value, text]. */
export function filterSelect(label, id, options) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id },
      h("option", { value: "" }, "All"),
      options.map(([value, text]) => h("option", { value }, text)),
    ),
  );
}
