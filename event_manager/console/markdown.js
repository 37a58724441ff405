// A safe subset of Markdown for descriptions (Postman's are Markdown): **bold**, *em*,
// `code`, [links](https://…), headings, list items and line breaks. Built as DOM nodes
// with text nodes for every piece of text, never as HTML: "<script>" stays text.

import { h } from "./dom.js";

const INLINE = new RegExp(
  [
    "`([^`]+)`", // 1 code
    "\\*\\*(.+?)\\*\\*|__(.+?)__", // 2, 3 strong
    "(?<![\\w*])\\*(?![\\s*])(.+?)\\*(?![\\w*])|(?<![\\w])_(?![\\s_])(.+?)_(?![\\w])", // 4, 5 em
    "\\[([^\\]]+)\\]\\(\\s*([^)\\s]+)(?:\\s+\"[^\"]*\")?\\s*\\)", // 6 text, 7 address
    "<((?:https?://|mailto:)[^>\\s]+)>", // 8 an autolink
  ].join("|"),
  "g",
);
const SAFE_ADDRESS = /^(?:https?:\/\/|mailto:)/i;

function link(address, children) {
  if (!SAFE_ADDRESS.test(address)) return children; // javascript:, data:, … stay text
  return h("a", { href: address, target: "_blank", rel: "noopener noreferrer" }, children);
}

/** The nodes of one line: text, and the inline marks it holds. */
function inline(text, links = true) {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    at = m.index + m[0].length;
    if (m[1] !== undefined) out.push(h("code", {}, m[1]));
    else if (m[2] !== undefined || m[3] !== undefined) out.push(h("strong", {}, inline(m[2] ?? m[3], links)));
    else if (m[4] !== undefined || m[5] !== undefined) out.push(h("em", {}, inline(m[4] ?? m[5], links)));
    else if (m[6] !== undefined) out.push(links ? link(m[7], inline(m[6], false)) : inline(m[6], false));
    else if (m[8] !== undefined) out.push(links ? link(m[8], m[8]) : m[8]);
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/**
 * `text` read as Markdown, as nodes to append: "**Note:** see [docs](https://x.io)" →
 * [<strong>Note:</strong>, " see ", <a href="https://x.io">docs</a>]. Headings lose
 * their "#", list items start with "• ", lines are kept with <br>.
 */
export function markdown(text) {
  const lines = (text || "")
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .map((line) =>
      line
        .replace(/^\s{0,3}#{1,6}\s+/, "")
        .replace(/^\s{0,3}>\s?/, "")
        .replace(/^(\s*)[-*+]\s+/, "$1• "),
    );
  while (lines.length && !lines.at(-1).trim()) lines.pop();
  const out = [];
  lines.forEach((line, i) => {
    if (i) out.push(h("br"));
    out.push(inline(line));
  });
  return out;
}
