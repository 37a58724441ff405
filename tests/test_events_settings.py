"""The Event List and the Settings tab."""

from __future__ import annotations

from tests.conftest import TenantHandle

EVENTS = "{ events { type name description active effectiveActive actions { name } } }"


def test_a_new_tenant_has_the_five_events_inactive_and_actions_disabled(
    tenant: TenantHandle,
) -> None:
    events = tenant.admin(EVENTS).data["events"]
    assert [(e["type"], e["name"]) for e in events] == [
        ("INCOMING_CALL", "Incoming Call"), ("ANSWERED_CALL", "Answered Call"),
        ("UNANSWERED_CALL", "Unanswered Call"), ("HANGUP", "Hangup"), ("RINGING", "Ringing")]
    assert all(e["description"] for e in events)
    assert not any(e["active"] or e["effectiveActive"] or e["actions"] for e in events)
    settings = tenant.admin("{ settings { actionsEnabled timezone } }").data["settings"]
    assert settings == {"actionsEnabled": False, "timezone": "UTC"}


def test_effective_active_needs_both_switches(tenant: TenantHandle) -> None:
    query = "{ event(type: ANSWERED_CALL) { active effectiveActive } }"
    tenant.admin("mutation { updateEvent(type: ANSWERED_CALL, input: {active: true}) "
                 "{ active } }").data
    assert tenant.admin(query).data["event"] == {"active": True, "effectiveActive": False}
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }").data
    assert tenant.admin(query).data["event"] == {"active": True, "effectiveActive": True}
    other = tenant.admin("{ event(type: HANGUP) { active effectiveActive } }").data["event"]
    assert other == {"active": False, "effectiveActive": False}


def test_update_event_attaches_actions_in_order_without_duplicates(tenant: TenantHandle) -> None:
    ids = [tenant.admin("mutation($n: String!) { createAction(input: {name: $n, "
                        "url: \"https://e.com\"}) { id } }", n=n).data["createAction"]["id"]
           for n in ("B", "A")]
    reply = tenant.admin("mutation($ids: [ID!]) { updateEvent(type: RINGING, "
                         "input: {actionIds: $ids}) { actions { name } active } }",
                         ids=[ids[0], ids[1], ids[0]])
    assert reply.data["updateEvent"] == {"actions": [{"name": "B"}, {"name": "A"}],
                                         "active": False}


def test_update_event_leaves_unnamed_fields_alone(tenant: TenantHandle) -> None:
    action_id = tenant.admin('mutation { createAction(input: {name: "A", url: "https://e.com"})'
                             ' { id } }').data["createAction"]["id"]
    tenant.admin("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {actionIds: $ids})"
                 " { type } }", ids=[action_id]).data
    tenant.admin("mutation { updateEvent(type: HANGUP, input: {active: true}) { type } }").data
    event = tenant.admin("{ event(type: HANGUP) { active actions { id } } }").data["event"]
    assert event == {"active": True, "actions": [{"id": action_id}]}


def test_unknown_action_ids_are_refused_naming_the_position(tenant: TenantHandle) -> None:
    action_id = tenant.admin('mutation { createAction(input: {name: "A", url: "https://e.com"})'
                             ' { id } }').data["createAction"]["id"]
    before = tenant.snapshot()
    reply = tenant.admin("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: "
                         "{active: true, actionIds: $ids}) { type } }",
                         ids=[action_id, "0123456789abcdef01234567"])
    assert reply.code == "BAD_USER_INPUT"
    assert reply.error["extensions"]["field"] == "input.actionIds[1]"
    assert tenant.snapshot() == before


def test_events_cannot_be_deleted(tenant: TenantHandle) -> None:
    reply = tenant.admin("mutation { deleteEvent(type: HANGUP) }")
    assert reply.code == "BAD_USER_INPUT"
    assert len(tenant.admin(EVENTS).data["events"]) == 5


def test_timezone_takes_iana_names_only(tenant: TenantHandle) -> None:
    reply = tenant.admin('mutation { updateSettings(input: {timezone: "Europe/Belgrade"}) '
                         '{ timezone actionsEnabled } }')
    assert reply.data["updateSettings"] == {"timezone": "Europe/Belgrade", "actionsEnabled": False}
    for bad in ("Mars/Olympus", "CET+1", "../../etc/passwd", ""):
        reply = tenant.admin("mutation($tz: String) { updateSettings(input: {timezone: $tz}) "
                             "{ timezone } }", tz=bad)
        assert reply.code == "BAD_USER_INPUT"
        assert reply.error["extensions"]["field"] == "input.timezone"
    assert tenant.admin("{ settings { timezone } }").data["settings"]["timezone"] == \
        "Europe/Belgrade"
