// Events → Dashboard: deliveries over time by status, latency p50/p95, and the worst
// actions, from `activityStats`; asked again (at most every 2 s) when the `activity`
// subscription reports a row that ended. Plain SVG: the console works offline.

import { gql, subscribe } from "../api.js";
import { app } from "../app.js";
import { clear, formatTime, h, inZone, pageHeader, refreshButton, statusBadge } from "../dom.js";

const RANGES = [
  { label: "Last hour", hours: 1, minutes: 5 },
  { label: "Last 6 hours", hours: 6, minutes: 5 },
  { label: "Last 24 hours", hours: 24, minutes: 15 },
  { label: "Last 7 days", hours: 168, minutes: 120 },
];
const STATUSES = [
  ["succeeded", "Succeeded"],
  ["failed", "Failed"],
  ["expired", "Expired"],
  ["skipped", "Skipped"],
];
const FINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "EXPIRED"]);
const REFRESH_MS = 2000;
const STATS = `query($s: DateTime!, $m: Int) { activityStats(since: $s, bucketMinutes: $m) {
  since until
  buckets { start succeeded failed skipped expired retried p50Ms p95Ms }
  actions { actionId actionName succeeded failed expired p95Ms lastStatus lastAt } } }`;
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000;
const HEIGHT = 190;
const PAD = { left: 44, right: 8, top: 8, bottom: 22 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children.flat()) {
    if (child != null) el.append(child);
  }
  return el;
}

function nice(max) {
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / step) * step;
}

function axes(max, unit, buckets, timezone) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const plotW = WIDTH - PAD.left - PAD.right;
  const lines = [0, 0.5, 1].map((f) => {
    const y = PAD.top + plotH * (1 - f);
    return svg(
      "g",
      { class: "chart-grid" },
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }),
      svg("text", { x: PAD.left - 4, y: y + 4, "text-anchor": "end" }, `${Math.round(max * f)}${unit}`),
    );
  });
  const last = buckets.length - 1;
  const labels = [0, Math.floor(buckets.length / 2), last]
    .filter((i, n, all) => buckets[i] && all.indexOf(i) === n)
    .map((i) =>
      svg(
        "text",
        {
          x: PAD.left + (plotW * (i + 0.5)) / buckets.length,
          y: HEIGHT - 6,
          "text-anchor": i === 0 ? "start" : i === last ? "end" : "middle",
          class: "chart-label",
        },
        formatTime(buckets[i].start, timezone).slice(5, 16),
      ),
    );
  return [...lines, ...labels];
}

function deliveriesChart(buckets, timezone) {
  const totals = buckets.map((b) => STATUSES.reduce((sum, [key]) => sum + b[key], 0));
  const max = nice(Math.max(0, ...totals));
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const width = (WIDTH - PAD.left - PAD.right) / Math.max(buckets.length, 1);
  const bars = buckets.flatMap((b, i) => {
    let y = PAD.top + plotH;
    return STATUSES.filter(([key]) => b[key] > 0).map(([key, label]) => {
      const height = (plotH * b[key]) / max;
      y -= height;
      return svg(
        "rect",
        { class: `bar-${key}`, x: PAD.left + i * width + width * 0.1, y, width: Math.max(width * 0.8, 1), height },
        svg("title", {}, `${formatTime(b.start, timezone)}: ${b[key]} ${label.toLowerCase()}`),
      );
    });
  });
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "Deliveries over time by status" },
    axes(max, "", buckets, timezone),
    bars,
  );
}

function latencyChart(buckets, timezone) {
  const max = nice(Math.max(0, ...buckets.map((b) => b.p95Ms || 0)));
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const width = (WIDTH - PAD.left - PAD.right) / Math.max(buckets.length, 1);
  const line = (key) => {
    const points = buckets
      .map((b, i) => (b[key] == null ? null : [PAD.left + (i + 0.5) * width, PAD.top + plotH * (1 - b[key] / max), b]))
      .filter(Boolean);
    const dots = points.map(([x, y, b]) =>
      svg(
        "circle",
        { class: `dot-${key}`, cx: x, cy: y, r: 2.5 },
        svg("title", {}, `${formatTime(b.start, timezone)}: ${key.slice(0, 3)} ${ms(b[key])}`),
      ),
    );
    return points.length
      ? svg("g", {}, svg("polyline", { class: `line-${key}`, points: points.map(([x, y]) => `${x},${y}`).join(" ") }), dots)
      : null;
  };
  return svg(
    "svg",
    { class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "Latency p50 and p95" },
    axes(max, " ms", buckets, timezone),
    line("p95Ms"),
    line("p50Ms"),
  );
}

function legend(items) {
  return h(
    "div",
    { class: "chart-legend" },
    items.map(([key, label]) => h("span", {}, h("i", { class: `swatch swatch-${key}` }), label)),
  );
}

function totalsOf(buckets) {
  const sum = (key) => buckets.reduce((n, b) => n + b[key], 0);
  return h(
    "div",
    { class: "stat-cards" },
    [...STATUSES, ["retried", "Retries"]].map(([key, label]) =>
      h("div", { class: `card stat-card stat-${key}` }, h("span", { class: "muted" }, label), h("strong", {}, `${sum(key)}`)),
    ),
  );
}

function ms(value) {
  return value == null ? "—" : `${Math.round(value)} ms`;
}

function actionsTable(actions, timezone) {
  if (!actions.length) return h("p", { class: "muted" }, "No deliveries ended in this window.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table", id: "dashboard-actions" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Action", "Failed", "Expired", "Succeeded", "p95", "Last", inZone("Last at", timezone)].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      h(
        "tbody",
        {},
        actions.map((a) =>
          h(
            "tr",
            {},
            h(
              "td",
              {},
              a.actionName === "(deleted)"
                ? h("span", { class: "muted" }, a.actionName)
                : h("a", { href: `#/actions/${encodeURIComponent(a.actionId)}` }, a.actionName),
            ),
            h("td", { class: a.failed ? "num bad" : "num" }, `${a.failed}`),
            h("td", { class: "num" }, `${a.expired}`),
            h("td", { class: "num" }, `${a.succeeded}`),
            h("td", { class: "num" }, ms(a.p95Ms)),
            h("td", {}, a.lastStatus ? statusBadge(a.lastStatus) : ""),
            h("td", {}, formatTime(a.lastAt, timezone)),
          ),
        ),
      ),
    ),
  );
}

export async function dashboard(view) {
  const timezone = app.settings?.timezone || "UTC";
  let range = RANGES[2];
  const body = h("div", { class: "dashboard", id: "dashboard" });
  const liveState = h("span", { class: "live live-connecting", role: "status" }, "Connecting…");
  const picker = h(
    "select",
    {
      id: "dashboard-range",
      "aria-label": "Time range",
      onchange: (e) => {
        range = RANGES[Number(e.target.value)];
        load();
      },
    },
    RANGES.map((r, i) => h("option", { value: i, selected: r === range }, r.label)),
  );

  let loaded = 0;
  let timer = null;
  async function load() {
    clearTimeout(timer);
    timer = null;
    loaded = Date.now();
    const since = new Date(Date.now() - range.hours * 3600 * 1000).toISOString();
    const { activityStats: stats } = await gql(STATS, { s: since, m: range.minutes });
    clear(
      body,
      totalsOf(stats.buckets),
      h(
        "section",
        { class: "card chart-card" },
        h("h2", {}, inZone("Deliveries over time", timezone)),
        legend(STATUSES),
        deliveriesChart(stats.buckets, timezone),
      ),
      h(
        "section",
        { class: "card chart-card" },
        h("h2", {}, inZone("Latency, trigger accepted → final response", timezone)),
        legend([
          ["p50", "p50"],
          ["p95", "p95"],
        ]),
        latencyChart(stats.buckets, timezone),
      ),
      h("section", { class: "card chart-card" }, h("h2", {}, "Worst actions"), actionsTable(stats.actions, timezone)),
    );
  }
  function soon() {
    if (timer) return;
    timer = setTimeout(() => load().catch(() => {}), Math.max(0, REFRESH_MS - (Date.now() - loaded)));
  }

  clear(
    view,
    pageHeader(
      "Dashboard",
      liveState,
      picker,
      refreshButton(load),
    ),
    h(
      "p",
      { class: "lead" },
      `Deliveries that ended, by status, their latency, and the actions that fail most. Updated as deliveries end.`,
    ),
    body,
  );
  await load();
  const stop = subscribe(
    "subscription { activity { id status } }",
    {},
    {
      onData: (data) => {
        if (FINAL.has(data.activity.status)) soon();
      },
      onReady: () => soon(),
      onState: (state) => {
        liveState.className = `live live-${state}`;
        liveState.textContent = { connecting: "Connecting…", live: "Live", offline: "Offline, reconnecting…" }[state];
      },
    },
  );
  return () => {
    stop();
    clearTimeout(timer);
  };
}
