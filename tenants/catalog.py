"""What every tenant has from the start: the manual's five events and 13 system parameters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventDefinition:
    type: str
    name: str
    description: str


EVENTS: tuple[EventDefinition, ...] = (
    EventDefinition("INCOMING_CALL", "Incoming Call", "A call arrives at the CloudPBX."),
    EventDefinition("ANSWERED_CALL", "Answered Call", "A call is answered."),
    EventDefinition("UNANSWERED_CALL", "Unanswered Call", "A call ends without being answered."),
    EventDefinition("HANGUP", "Hangup", "A call is hung up."),
    EventDefinition("RINGING", "Ringing", "An extension starts ringing."),
)
EVENT_TYPES: tuple[str, ...] = tuple(e.type for e in EVENTS)
EVENTS_BY_TYPE = {e.type: e for e in EVENTS}


@dataclass(frozen=True)
class SystemParameter:
    tag: str
    description: str
    from_call: bool
    """True when the value comes from the trigger's params; False when the service makes it."""


SYSTEM_PARAMETERS: tuple[SystemParameter, ...] = (
    SystemParameter(
        "called_number", "Generated for calls, determines the extension that called", True
    ),
    SystemParameter("caller_id", "Generated on incoming calls, Caller ID", True),
    SystemParameter("calling_name", "Generated for calls, a unique ID generated for calls", True),
    SystemParameter(
        "call_cost", "Call cost generated for outbound calls, determines the price of the call",
        True,
    ),
    SystemParameter("call_id", "Generated for calls, unique ID of the call", True),
    SystemParameter(
        "call_rating_duration",
        "Generated for rated completed calls, determines the rated duration of the call",
        True,
    ),
    SystemParameter("date", "Always generated, Date when event triggered [Y-m-d]", False),
    SystemParameter(
        "direction",
        "Generated for calls, determines the direction of a call (inbound/outbound)",
        True,
    ),
    SystemParameter(
        "duration", "Generated for completed calls, determines the duration of the call", True
    ),
    SystemParameter(
        "extension", "Generated for extension in the context of triggered Action", True
    ),
    SystemParameter(
        "tenant", "Always generated, Tenant Code where event triggered (empty on CC)", False
    ),
    SystemParameter("time", "Always generated, Time when an event triggered [H:i:s]", False),
    SystemParameter(
        "unix_time", "Always generated, Unix timestamp when an event triggered", False
    ),
)
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 0.1, 60.0
"""The range of an action's timeout."""

SYSTEM_TAGS: frozenset[str] = frozenset(p.tag for p in SYSTEM_PARAMETERS)
