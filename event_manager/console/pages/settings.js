// Events → Settings: actions enabled for all events, the tenant's time zone, and how long
// an action may fail before it is disabled.

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
  const { settings } = await gql("{ settings { actionsEnabled timezone autoDisableAfterHours } }");
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
  const hours = h("input", {
    type: "number",
    min: 1,
    max: 8760,
    step: 1,
    value: settings.autoDisableAfterHours ?? "",
    placeholder: "never",
    "data-field": "input.autoDisableAfterHours",
    disabled: !app.canWrite,
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
    h(
      "section",
      { class: "form-section" },
      h("h2", {}, "Failing actions"),
      field(
        "Disable an action after it has failed for (hours)",
        hours,
        "An action whose deliveries have all failed for this long is disabled, and triggers skip it " +
          "until it is enabled again on the Actions page. 1 to 8760; empty: never.",
      ),
    ),
    h("div", { class: "form-footer" }, save),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(save, async () => {
      try {
        const { updateSettings } = await gql(
          "mutation($i: SettingsInput!) { updateSettings(input: $i) { actionsEnabled timezone autoDisableAfterHours } }",
          {
            i: {
              actionsEnabled: enabled.input.checked,
              timezone: zone.value.trim(),
              autoDisableAfterHours: hours.value.trim() === "" ? null : Number(hours.value),
            },
          },
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
