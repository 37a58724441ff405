// Events → Settings: actions enabled for all events, and the tenant's time zone.

import { gql } from "../api.js";
import { app } from "../app.js";
import { busy, clear, field, h, pageHeader, showError, toast, toggle } from "../dom.js";

function timezones() {
  try {
    return ["UTC", ...Intl.supportedValuesOf("timeZone").filter((z) => z !== "UTC")];
  } catch {
    return ["UTC"];
  }
}

export async function settingsPage(view) {
  const { settings } = await gql("{ settings { actionsEnabled timezone } }");
  app.settings = settings;
  const enabled = toggle("Actions enabled for all events", settings.actionsEnabled, {
    "data-field": "input.actionsEnabled",
    disabled: !app.canWrite,
  });
  const zone = h("input", {
    type: "text",
    value: settings.timezone,
    list: "timezones",
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.timezone",
    disabled: !app.canWrite,
    required: true,
  });
  const save = h("button", { type: "submit", class: "primary", disabled: !app.canWrite }, "Save");
  const form = h(
    "form",
    { class: "form card", novalidate: true },
    h(
      "section",
      { class: "form-section" },
      h("h2", {}, "Actions"),
      enabled.wrapper,
      h(
        "p",
        { class: "muted" },
        "By default actions are disabled for all events, and every event's active status is grayed out. " +
          "Changing this to Yes enables the actions of all active events.",
      ),
    ),
    h(
      "section",
      { class: "form-section" },
      h("h2", {}, "Time"),
      field(
        "Time zone",
        zone,
        "An IANA name such as Europe/Sarajevo. {{date}}, {{time}} and the times in this console use it.",
      ),
      h(
        "datalist",
        { id: "timezones" },
        timezones().map((z) => h("option", { value: z })),
      ),
    ),
    h("div", { class: "form-footer" }, save),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(save, async () => {
      try {
        const { updateSettings } = await gql(
          "mutation($i: SettingsInput!) { updateSettings(input: $i) { actionsEnabled timezone } }",
          { i: { actionsEnabled: enabled.input.checked, timezone: zone.value.trim() } },
        );
        app.settings = updateSettings;
        toast(`Settings saved: actions ${updateSettings.actionsEnabled ? "enabled" : "disabled"} for all events.`);
      } catch (error) {
        showError(form, error);
      }
    });
  });
  clear(view, pageHeader("Settings"), form);
}
