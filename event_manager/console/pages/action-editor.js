// Actions → Add / Edit Action: every field of ActionInput, and the undefined-parameters banner.

import { ACTION_FIELDS, ApiError, gql, MASK } from "../api.js";
import { app } from "../app.js";
import {
  busy,
  clear,
  confirmDialog,
  EVENT_NAMES,
  field,
  formatTime,
  h,
  icon,
  inZone,
  nextId,
  originText,
  pageHeader,
  showError,
  showErrors,
  toast,
  toggle,
} from "../dom.js";
import { kvEditor } from "../widgets.js";
import { openParameterDialog } from "./parameters.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const BODY_TYPES = [
  ["NONE", "None"],
  ["FORM_DATA", "Form-data"],
  ["X_WWW_FORM_URLENCODED", "x-www-form-urlencoded"],
  ["RAW", "raw"],
];
const AUTH_TYPES = [
  ["NO_AUTH", "No Auth"],
  ["API_KEY", "API Key"],
  ["BASIC_AUTH", "Basic Auth"],
  ["BEARER_TOKEN", "Bearer Token"],
];
const CONTENT_TYPES = [
  "application/json",
  "text/plain",
  "application/xml",
  "text/xml",
  "text/html",
  "application/javascript",
];
const HEADER_NAMES = [
  "Accept",
  "Accept-Language",
  "Authorization",
  "Cache-Control",
  "Content-Type",
  "Cookie",
  "Origin",
  "User-Agent",
  "X-Api-Key",
  "X-Correlation-Id",
  "X-Request-Id",
];

const EMPTY = {
  name: "",
  description: "",
  method: "POST",
  url: "",
  query: [],
  headers: [],
  bodyType: "NONE",
  bodyFields: [],
  rawBody: "",
  rawContentType: "application/json",
  authorization: { type: "NO_AUTH", apiKeyIn: "HEADER" },
  timeoutSeconds: 10,
  signingSecret: null,
  caCertificate: null,
  policy: { order: "ANY", expireAfterSeconds: null, maxRequestsPerSecond: null },
  events: [],
  undefinedParameters: [],
};

/** A secret as the API shows it: masked means "stored, unchanged unless you type". */
function secretInput(value, path) {
  const stored = value === MASK;
  const input = h("input", {
    type: "password",
    autocomplete: "new-password",
    spellcheck: "false",
    "data-field": path,
    placeholder: stored ? "•••••••• stored (type to replace)" : "",
  });
  input.value = stored ? "" : value || "";
  return { input, value: () => (input.value === "" && stored ? null : input.value) };
}

/** whsec_ and the base64 of 32 random bytes (Standard Webhooks). */
function newSigningSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

function section(title, ...content) {
  return h("section", { class: "form-section" }, h("h2", {}, title), ...content);
}

export async function actionEditor(view, id) {
  const isNew = id === "new";
  const action = isNew
    ? { ...EMPTY }
    : (await gql(`query($id: ID!) { action(id: $id) { ${ACTION_FIELDS} } }`, { id })).action;
  const ro = !app.canWrite;

  // --- General ---
  const name = h("input", {
    type: "text",
    value: action.name,
    required: true,
    maxlength: 100,
    autocomplete: "off",
    "data-field": "input.name",
    disabled: ro,
  });
  const description = h("textarea", { rows: 2, "data-field": "input.description", disabled: ro });
  description.value = action.description;
  const method = h(
    "select",
    { "data-field": "input.method", disabled: ro },
    METHODS.map((m) => h("option", { value: m, selected: m === action.method }, m)),
  );
  const url = h("input", {
    type: "text",
    value: action.url,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.url",
    placeholder: "https://crm.example.com/calls?caller={{caller_id}}",
    disabled: ro,
  });

  // --- Query, headers ---
  const query = kvEditor(action.query, { path: "input.query", noun: "query parameter", disabled: ro });
  const headers = kvEditor(action.headers, {
    path: "input.headers",
    noun: "header",
    keyPlaceholder: "Header-Name",
    keyList: "header-names",
    disabled: ro,
  });

  // --- Body ---
  const bodyName = nextId("body");
  const bodyRadios = h(
    "div",
    {
      class: "segmented",
      role: "radiogroup",
      "aria-label": "Body type",
      "data-field": "input.bodyType",
      tabindex: "-1",
    },
    BODY_TYPES.map(([value, label]) => {
      const radio = h("input", {
        type: "radio",
        name: bodyName,
        value,
        checked: value === action.bodyType,
        id: nextId("rb"),
        disabled: ro,
      });
      return h("label", { for: radio.id }, radio, h("span", {}, label));
    }),
  );
  const bodyFields = kvEditor(action.bodyFields, { path: "input.bodyFields", noun: "field", disabled: ro });
  const contentType = h("input", {
    type: "text",
    value: action.rawContentType || "application/json",
    list: "content-types",
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.rawContentType",
    disabled: ro,
  });
  const rawBody = h("textarea", {
    rows: 8,
    class: "mono",
    spellcheck: "false",
    "data-field": "input.rawBody",
    disabled: ro,
    placeholder: '{"caller": "{{caller_id}}", "duration": "{{duration}}"}',
  });
  rawBody.value = action.rawBody || "";
  const formatJson = h("button", { type: "button", class: "small", disabled: ro }, "Format JSON");
  formatJson.addEventListener("click", () => {
    try {
      rawBody.value = JSON.stringify(JSON.parse(rawBody.value), null, 2);
    } catch {
      toast("The body is not JSON (placeholders must stand inside strings to format it).", "error");
    }
  });
  const bodyPanels = {
    NONE: h("p", { class: "muted" }, "This request has no body."),
    FORM: h("div", {}, bodyFields.el),
    RAW: h("div", { class: "raw" }, field("Content type", contentType), field("Body", rawBody), formatJson),
  };
  const bodyType = () => bodyRadios.querySelector("input:checked").value;
  const showBody = () => {
    const type = bodyType();
    bodyPanels.NONE.hidden = type !== "NONE";
    bodyPanels.FORM.hidden = !["FORM_DATA", "X_WWW_FORM_URLENCODED"].includes(type);
    bodyPanels.RAW.hidden = type !== "RAW";
  };
  bodyRadios.addEventListener("change", showBody);
  showBody();

  // --- Authorization ---
  const auth = action.authorization;
  const authType = h(
    "select",
    { "data-field": "input.authorization.type", disabled: ro },
    AUTH_TYPES.map(([value, label]) => h("option", { value, selected: value === auth.type }, label)),
  );
  const apiKeyName = h("input", {
    type: "text",
    value: auth.apiKeyName || "",
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.authorization.apiKeyName",
    placeholder: "X-Api-Key",
    disabled: ro,
  });
  const apiKeyValue = secretInput(auth.apiKeyValue, "input.authorization.apiKeyValue");
  const apiKeyIn = h(
    "select",
    { "data-field": "input.authorization.apiKeyIn", disabled: ro },
    h("option", { value: "HEADER", selected: auth.apiKeyIn !== "QUERY" }, "Header"),
    h("option", { value: "QUERY", selected: auth.apiKeyIn === "QUERY" }, "Query Params"),
  );
  const username = h("input", {
    type: "text",
    value: auth.username || "",
    autocomplete: "off",
    spellcheck: "false",
    "data-field": "input.authorization.username",
    disabled: ro,
  });
  const password = secretInput(auth.password, "input.authorization.password");
  const token = secretInput(auth.token, "input.authorization.token");
  [apiKeyValue, password, token].forEach((s) => {
    s.input.disabled = ro;
  });
  const authPanels = {
    NO_AUTH: h("p", { class: "muted" }, "The endpoint requires no authorization."),
    API_KEY: h(
      "div",
      { class: "grid-3" },
      field("Key", apiKeyName),
      field("Value", apiKeyValue.input),
      field("Add to", apiKeyIn),
    ),
    BASIC_AUTH: h("div", { class: "grid-2" }, field("Username", username), field("Password", password.input)),
    BEARER_TOKEN: h("div", {}, field("Token", token.input, "Sent as Authorization: Bearer <token>.")),
  };
  const showAuth = () =>
    Object.entries(authPanels).forEach(([type, panel]) => {
      panel.hidden = type !== authType.value;
    });
  authType.addEventListener("change", showAuth);
  showAuth();

  // --- Advanced ---
  const timeout = h("input", {
    type: "number",
    min: 0.1,
    max: 60,
    step: 0.1,
    value: action.timeoutSeconds,
    "data-field": "input.timeoutSeconds",
    disabled: ro,
    class: "narrow",
  });
  const signing = toggle("Sign requests (Standard Webhooks)", Boolean(action.signingSecret), { disabled: ro });
  const secret = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    class: "mono",
    "data-field": "input.signingSecret",
    disabled: ro,
    placeholder: action.signingSecret === MASK ? "•••••••• stored (type or generate to replace)" : "whsec_…",
  });
  const generate = h(
    "button",
    {
      type: "button",
      class: "small",
      disabled: ro,
      onclick: () => {
        secret.value = newSigningSecret();
        secret.select();
      },
    },
    "Generate",
  );
  const secretRow = h(
    "div",
    { class: "secret-row" },
    field(
      "Signing secret",
      secret,
      "Receivers check the webhook-id, webhook-timestamp and webhook-signature headers with it. Copy it now: it is shown masked after saving.",
    ),
    generate,
  );
  const showSigning = () => {
    secretRow.hidden = !signing.input.checked;
    if (signing.input.checked && !action.signingSecret && !secret.value) secret.value = newSigningSecret();
  };
  signing.input.addEventListener("change", showSigning);
  showSigning();
  const caCertificate = h("textarea", {
    rows: 4,
    class: "mono",
    spellcheck: "false",
    "data-field": "input.caCertificate",
    "aria-label": "CA certificate",
    disabled: ro,
    placeholder: "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----",
  });
  caCertificate.value = action.caCertificate || "";

  // --- Delivery policy (README: "Calls, not loose events") ---
  const policy = action.policy;
  const order = h(
    "select",
    { "data-field": "input.policy.order", disabled: ro },
    h("option", { value: "ANY", selected: policy.order !== "PER_CALL" }, "Any order (fastest)"),
    h("option", { value: "PER_CALL", selected: policy.order === "PER_CALL" }, "One at a time per call, in order"),
  );
  const expireAfter = h("input", {
    type: "number",
    min: 1,
    max: 604800,
    step: 1,
    value: policy.expireAfterSeconds ?? "",
    placeholder: "never",
    "data-field": "input.policy.expireAfterSeconds",
    disabled: ro,
    class: "narrow",
  });
  const maxRate = h("input", {
    type: "number",
    min: 0.01,
    max: 10000,
    step: "any",
    value: policy.maxRequestsPerSecond ?? "",
    placeholder: "no limit",
    "data-field": "input.policy.maxRequestsPerSecond",
    disabled: ro,
    class: "narrow",
  });

  function input() {
    const type = bodyType();
    const kind = authType.value;
    const authorization = { type: kind };
    if (kind === "API_KEY")
      Object.assign(authorization, {
        apiKeyName: apiKeyName.value.trim(),
        apiKeyValue: apiKeyValue.value(),
        apiKeyIn: apiKeyIn.value,
      });
    if (kind === "BASIC_AUTH") Object.assign(authorization, { username: username.value, password: password.value() });
    if (kind === "BEARER_TOKEN") Object.assign(authorization, { token: token.value() });
    let signingSecret = null; // keeps the stored one
    if (!signing.input.checked) signingSecret = action.signingSecret ? "" : null;
    else if (secret.value.trim()) signingSecret = secret.value.trim();
    return {
      name: name.value.trim(),
      description: description.value,
      method: method.value,
      url: url.value.trim(),
      query: query.values(),
      headers: headers.values(),
      bodyType: type,
      bodyFields: ["FORM_DATA", "X_WWW_FORM_URLENCODED"].includes(type) ? bodyFields.values() : [],
      rawBody: type === "RAW" ? rawBody.value : null,
      rawContentType: type === "RAW" ? contentType.value.trim() : null,
      authorization,
      timeoutSeconds: timeout.value === "" ? 10 : Number(timeout.value),
      signingSecret,
      // Empty: removes a stored one ("") or leaves none (null).
      caCertificate: caCertificate.value.trim() || (action.caCertificate ? "" : null),
      policy: {
        order: order.value,
        expireAfterSeconds: expireAfter.value === "" ? null : Number(expireAfter.value),
        maxRequestsPerSecond: maxRate.value === "" ? null : Number(maxRate.value),
      },
    };
  }

  const save = h("button", { type: "submit", class: "primary", disabled: ro }, isNew ? "Create action" : "Save");
  const form = h(
    "form",
    { class: "form card action-form", novalidate: true },
    section(
      "General",
      field("Name", name, "Unique within the tenant."),
      field("Description", description),
      h(
        "div",
        { class: "method-url" },
        field("HTTP Method", method),
        field("URL", url, "Use {{parameter}} placeholders anywhere in the request."),
      ),
    ),
    section("Query", query.el),
    section("Body", bodyRadios, bodyPanels.NONE, bodyPanels.FORM, bodyPanels.RAW),
    section(
      "Authorization",
      field("Type", authType),
      authPanels.NO_AUTH,
      authPanels.API_KEY,
      authPanels.BASIC_AUTH,
      authPanels.BEARER_TOKEN,
    ),
    section("Headers", headers.el),
    section(
      "Delivery",
      field("Timeout (seconds)", timeout, "From 0.1 to 60."),
      signing.wrapper,
      secretRow,
      field(
        "CA certificate",
        caCertificate,
        "For an https receiver whose certificate comes from a private CA: its CA certificate (PEM), trusted for this action only.",
      ),
    ),
    section(
      "Delivery policy",
      h(
        "div",
        { class: "grid-2" },
        field(
          "Order",
          order,
          "One at a time per call: the deliveries of one call_id wait (HELD) for the one before to end.",
        ),
        field(
          "Expire after (seconds)",
          expireAfter,
          "Not sent within this time of the event: EXPIRED, never sent later. Empty: never.",
        ),
        field(
          "Receiver's limit (requests/s)",
          maxRate,
          "Deliveries beyond it wait their turn (QUEUED), they do not fail. Empty: no limit.",
        ),
      ),
    ),
    h(
      "datalist",
      { id: "content-types" },
      CONTENT_TYPES.map((v) => h("option", { value: v })),
    ),
    h(
      "datalist",
      { id: "header-names" },
      HEADER_NAMES.map((v) => h("option", { value: v })),
    ),
    h(
      "div",
      { class: "form-footer sticky" },
      save,
      h("a", { href: "#/actions", class: "button" }, isNew ? "Cancel" : "Back to actions"),
      !isNew && app.canWrite
        ? h("button", { type: "button", class: "danger push-right", onclick: remove }, icon("trash"), " Delete")
        : null,
    ),
  );

  /** The required fields left empty, as the API would refuse them, but all at once (the
   * API names only the first). */
  function missing() {
    return [
      [name, "input.name"],
      [url, "input.url"],
    ]
      .filter(([control]) => !control.value.trim())
      .map(([, path]) => new ApiError(`${path} must not be empty`, { code: "BAD_USER_INPUT", field: path }));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const empty = missing();
    if (empty.length) {
      showErrors(form, empty);
      return;
    }
    busy(save, async () => {
      try {
        const data = isNew
          ? await gql(`mutation($i: ActionInput!) { createAction(input: $i) { ${ACTION_FIELDS} } }`, { i: input() })
          : await gql(
              `mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) { ${ACTION_FIELDS} } }`,
              { id, i: input() },
            );
        const saved = data.createAction || data.updateAction;
        toast(`${saved.name} saved.`);
        if (isNew) location.hash = `#/actions/${saved.id}`;
        else actionEditor(view, id);
      } catch (error) {
        showError(form, error);
      }
    });
  });

  async function remove() {
    if (!(await confirmDialog("Delete action", `Delete ${action.name}? It is also detached from every event.`))) return;
    try {
      await gql("mutation($id: ID!) { deleteAction(id: $id) }", { id });
      toast(`${action.name} deleted.`);
      location.hash = "#/actions";
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const banner = action.undefinedParameters.length
    ? h(
        "div",
        { class: "banner banner-warn undefined-parameters", role: "region", "aria-label": "Undefined parameters" },
        icon("alert"),
        h(
          "div",
          {},
          h("strong", {}, "Undefined parameters."),
          " This action uses parameters that are not defined yet, so they would be sent as written. Click one to add it with its value:",
          h(
            "ul",
            { class: "chips" },
            action.undefinedParameters.map((tag) =>
              h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "chip chip-button",
                    disabled: ro,
                    "aria-label": `Add parameter ${tag}`,
                    onclick: () =>
                      openParameterDialog({ tag }, (p) => {
                        toast(`Parameter ${p.tag} added.`);
                        actionEditor(view, id);
                      }),
                  },
                  icon("plus"),
                  ` {{${tag}}}`,
                ),
              ),
            ),
          ),
        ),
      )
    : null;

  const facts = isNew
    ? null
    : h(
        "p",
        { class: "muted facts-line" },
        action.events.length
          ? ["Attached to ", action.events.map((e) => EVENT_NAMES[e]).join(", "), ". "]
          : "Not attached to any event. ",
        action.origin ? `${originText(action.origin)}. ` : "",
        `${inZone("Updated", app.settings.timezone)} ${formatTime(action.updatedAt, app.settings.timezone)}.`,
      );

  clear(
    view,
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/actions" }, "Actions"),
      " / ",
      isNew ? "Add Action" : action.name,
    ),
    pageHeader(isNew ? "Add Action" : `Edit action: ${action.name}`),
    banner,
    facts,
    form,
  );
  if (isNew) name.focus();
}
