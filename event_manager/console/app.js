// The console's shell: sign-in, the tenant selector, and a hash router over the pages.

import { ApiError, gql, session } from "./api.js";
import { busy, clear, errorBox, field, h, labelCells, showError, toast } from "./dom.js";

/** What every page may read: who is signed in, and the tenant's settings. */
export const app = {
  me: null,
  tenants: [],
  settings: { actionsEnabled: false, timezone: "UTC" },
  get canWrite() {
    return ["SYSTEM_ADMIN", "TENANT_ADMIN"].includes(this.me?.role);
  },
  async loadSettings() {
    try {
      const { settings } = await gql("{ settings { actionsEnabled timezone } }");
      this.settings = settings;
    } catch {
      // The page itself shows why (for example FEATURE_DISABLED).
    }
  },
  /** An error box for a page; offers what fixes it where the key can. */
  failure(error) {
    if (error.code === "UNAUTHENTICATED") {
      signOut(error);
      return h("div");
    }
    if (error.code === "FEATURE_DISABLED") return errorBox(switchedOff(), ...this.switchOn());
    return errorBox(error);
  },
  /** What turns a switched-off tenant on: a button for a system admin, whom to ask for others. */
  switchOn() {
    const extra = [];
    if (this.me?.role === "SYSTEM_ADMIN" && session.tenant) {
      const button = h(
        "button",
        { type: "button", class: "primary" },
        `Enable the Event Manager for ${session.tenant}`,
      );
      button.addEventListener("click", () =>
        busy(button, async () => {
          try {
            await gql("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) { code } }", {
              c: session.tenant,
            });
            await loadTenants();
            renderWho();
            await this.loadSettings();
            route();
          } catch (e) {
            toast(e.message, "error");
          }
        }),
      );
      extra.push(h("p", {}, button));
    } else {
      extra.push(h("p", {}, "Ask a system admin, or the PBX's support, to turn it on."));
    }
    return extra;
  },
};

/** FEATURE_DISABLED as a sentence: the API's own names the tenant's code and the code. */
function switchedOff() {
  const tenant = session.tenant || app.me?.tenant;
  return new ApiError(
    `The Event Manager is switched off for ${tenant ? `tenant ${tenant}` : "this tenant"}, so its events, actions and activity cannot be shown or changed.`,
    { code: null },
  );
}

const ROUTES = [
  [/^#\/events$/, "events", () => import("./pages/events.js"), "eventList"],
  [/^#\/events\/([A-Z_]+)$/, "events", () => import("./pages/events.js"), "eventEditor"],
  [/^#\/settings$/, "settings", () => import("./pages/settings.js"), "settingsPage"],
  [/^#\/activity$/, "activity", () => import("./pages/activity.js"), "activityMonitor"],
  [/^#\/dashboard$/, "dashboard", () => import("./pages/dashboard.js"), "dashboard"],
  [/^#\/actions$/, "actions", () => import("./pages/actions.js"), "actionList"],
  [/^#\/actions\/([^/]+)$/, "actions", () => import("./pages/action-editor.js"), "actionEditor"],
  [/^#\/parameters$/, "parameters", () => import("./pages/parameters.js"), "parameterList"],
  [/^#\/audit$/, "audit", () => import("./pages/audit.js"), "auditLog"],
];

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const who = document.getElementById("who");
let leave = null;
let visit = 0;

/** Shows the page of the current hash; the previous page's `leave` runs first. */
export async function route() {
  if (!app.me) return;
  const hash = location.hash || "#/events";
  const found = ROUTES.map(([pattern, section, load, name]) => [hash.match(pattern), section, load, name]).find(
    ([match]) => match,
  );
  if (!found) {
    location.replace("#/events");
    return;
  }
  const [match, section, load, name] = found;
  const current = ++visit;
  document.querySelectorAll("dialog[open]").forEach((dialog) => dialog.close());
  if (leave) leave();
  leave = null;
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const view = h("div", { class: "view", "aria-busy": "true" });
  clear(main, view);
  let cleanup;
  try {
    const module = await load();
    cleanup = await module[name](view, ...match.slice(1).map(decodeURIComponent));
  } catch (error) {
    if (current === visit) clear(view, app.failure(error instanceof ApiError ? error : new ApiError(String(error))));
  }
  view.removeAttribute("aria-busy");
  if (current !== visit) {
    if (cleanup) cleanup();
    return;
  }
  leave = cleanup || null;
  const heading = view.querySelector("h1");
  if (heading && !view.contains(document.activeElement)) heading.focus({ preventScroll: true });
  document.title = `${heading?.textContent || "Event Manager"} · Event Manager`;
}

/** Re-renders the current page (after a change that the page does not track itself). */
export const refresh = () => route();

async function loadTenants() {
  const { tenants } = await gql("{ tenants { code name master eventManagerEnabled } }");
  app.tenants = tenants;
}

function renderWho() {
  const parts = [];
  if (app.me.role === "SYSTEM_ADMIN") {
    const select = h(
      "select",
      { id: "tenant-select" },
      app.tenants.map((t) =>
        h(
          "option",
          { value: t.code, selected: t.code === session.tenant },
          `${t.name === t.code ? t.code : `${t.name} (${t.code})`}${t.master ? " · Master" : ""}${t.eventManagerEnabled ? "" : " · disabled"}`,
        ),
      ),
    );
    if (!app.tenants.length) select.append(h("option", { value: "" }, "no tenants yet"));
    select.addEventListener("change", async () => {
      session.tenant = select.value;
      await app.loadSettings();
      route();
    });
    parts.push(h("label", { for: "tenant-select", class: "who-label" }, "Tenant"), select);
  } else if (app.me.tenant) {
    parts.push(h("span", { class: "who-label" }, "Tenant"), h("strong", {}, app.me.tenant));
  }
  parts.push(
    h("span", { class: "badge role" }, app.me.role.replace("_", " ")),
    h("button", { type: "button", class: "small", onclick: () => signOut() }, "Sign out"),
  );
  clear(who, parts);
}

/** Checks the session's key and opens the console; throws an ApiError when refused. */
async function start() {
  const { me } = await gql("{ me { tenant role } }");
  if (me.role === "PBX") {
    throw new ApiError("A PBX key can only report events. Sign in with an admin or viewer key.", {
      code: "FORBIDDEN",
      field: "key",
    });
  }
  app.me = me;
  if (me.role === "SYSTEM_ADMIN") {
    await loadTenants();
    if (!app.tenants.some((t) => t.code === session.tenant)) {
      session.tenant = (app.tenants.find((t) => t.eventManagerEnabled && !t.master) || app.tenants[0])?.code;
    }
  } else {
    session.tenant = null;
  }
  renderWho();
  // The audit log is for admins: a VIEWER key would only be refused there.
  document.querySelector('#nav a[data-section="audit"]').hidden = !app.canWrite;
  topbar.hidden = false;
  document.body.classList.add("signed-in");
  await app.loadSettings();
  await route();
}

function signOut(reason = null) {
  if (leave) leave();
  leave = null;
  session.clear();
  app.me = null;
  topbar.hidden = true;
  document.body.classList.remove("signed-in");
  showLogin(reason);
}

function showLogin(error = null) {
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "em_…",
    "data-field": "key",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "login", novalidate: true },
    h(
      "div",
      { class: "brand login-brand" },
      h("span", { class: "brand-mark", "aria-hidden": "true" }, "EM"),
      " Event Manager",
    ),
    h("h1", { tabindex: "-1" }, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "Use an API key of your tenant (TENANT_ADMIN or VIEWER), or a SYSTEM_ADMIN key to work in any tenant.",
    ),
    field("API key", input, "Kept only in this browser tab (session storage) until you sign out or close it."),
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      showError(form, new ApiError("Enter an API key.", { field: "key" }));
      return;
    }
    busy(submit, async () => {
      session.key = key;
      session.tenant = null;
      try {
        await start();
      } catch (e) {
        session.clear();
        app.me = null;
        const message = e.code === "UNAUTHENTICATED" ? "This key is unknown or revoked." : e.message;
        showError(form, new ApiError(message, { code: e.code, field: "key" }));
      }
    });
  });
  document.title = "Sign in · Event Manager";
  clear(main, h("div", { class: "login-page" }, form));
  if (error)
    showError(
      form,
      new ApiError(error.code === "UNAUTHENTICATED" ? "Your key was refused; sign in again." : error.message, {
        field: "key",
      }),
    );
  input.focus();
}

window.addEventListener("hashchange", route);

// Rows come and go (the Activity Monitor's live); each new cell gets its column's label.
new MutationObserver(() => labelCells(main)).observe(main, { childList: true, subtree: true });

// The skip link focuses the page without touching the hash, which the router owns.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// Enter submits a form from its checkboxes and radios too, as it does from its text fields,
// unless the form's submit button is disabled (nothing chosen yet).
document.addEventListener("keydown", (event) => {
  const box = event.target;
  if (event.key !== "Enter" || !box.matches?.('input[type="checkbox"], input[type="radio"]') || !box.form) return;
  event.preventDefault();
  const form = box.form;
  const submit = [...form.elements].find((el) => el.type === "submit");
  if (!submit?.disabled) form.requestSubmit(submit);
});

if (session.key) {
  start().catch((error) => signOut(error));
} else {
  showLogin();
}
