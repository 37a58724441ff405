// The Test dialog: testEvent with sample call data, to the event's actions.

import { ACTIVITY_FIELDS, gql } from "../api.js";
import { busy, h, nextId, openDialog, showError } from "../dom.js";
import { checkList, kvEditor } from "../widgets.js";

// Every system parameter the call's data fill (the service makes date, time, unix_time
// and tenant), so that a test sends none of them empty.
function sampleCall(type) {
  const answered = type === "ANSWERED_CALL" || type === "HANGUP";
  const call = {
    called_number: "200",
    caller_id: "+15550100",
    calling_name: "Test Caller",
    call_cost: answered ? "0.12" : "0",
    call_id: `test-${crypto.randomUUID().slice(0, 8)}`,
    call_rating_duration: answered ? "60" : "0",
    direction: "inbound",
    duration: answered ? "42" : "0",
    extension: "200",
  };
  return Object.entries(call).map(([key, value]) => ({ key, value, enabled: true }));
}

/** Opens the dialog for `event` ({type, name, actions}); `onSent(result)` gets the TriggerResult. */
export function openTestDialog(event, onSent = () => {}) {
  const { body, footer, close } = openDialog(`Test ${event.name}`, { wide: true });
  const picker = event.actions.length
    ? checkList(
        event.actions.map((a) => ({ id: a.id, label: a.name, detail: `${a.method} ${a.url}` })),
        new Set(event.actions.map((a) => a.id)),
        { label: "Send to", path: "actionIds" },
      )
    : null;
  const params = kvEditor(sampleCall(event.type), { path: "params", noun: "value", keyPlaceholder: "caller_id" });
  const formId = nextId("form");
  const send = h("button", { type: "submit", class: "primary", form: formId }, "Send test");
  const form = h(
    "form",
    { id: formId, novalidate: true },
    h(
      "p",
      {},
      `Sends ${event.name} now, as a test, even while actions are disabled. It shows in the Activity Monitor with source TEST.`,
    ),
    picker
      ? picker.el
      : h("p", { class: "note" }, "No actions are attached to this event: the test is recorded as SKIPPED."),
    h("fieldset", { class: "plain" }, h("legend", {}, "Call data"), params.el),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = Object.fromEntries(
      params
        .values()
        .filter((r) => r.enabled)
        .map((r) => [r.key, r.value]),
    );
    busy(send, async () => {
      try {
        const { testEvent } = await gql(
          `mutation($e: EventType!, $p: JSON, $ids: [ID!]) {
            testEvent(event: $e, params: $p, actionIds: $ids) {
              triggerId accepted reason activities { ${ACTIVITY_FIELDS} } } }`,
          { e: event.type, p: values, ids: picker ? picker.selectedIds() : null },
        );
        close("sent");
        onSent(testEvent);
      } catch (error) {
        showError(form, error);
      }
    });
  });
  body.append(form);
  footer.append(h("button", { type: "button", onclick: () => close() }, "Cancel"), send);
  send.focus();
}
