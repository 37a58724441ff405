"""Input types that Strawberry builds straight from their GraphQL value
(schema.activity.built_from_leaves) come out as its own conversion makes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from strawberry.types.arguments import convert_argument

from schema import schema
from schema.activity import TriggerInput
from schema.enums import EventType


def converted(value: dict[str, Any], *, own: bool) -> Any:
    definition = TriggerInput.__strawberry_definition__
    hook = definition.from_input
    if not own:
        definition.from_input = None
    try:
        return convert_argument(value, TriggerInput, schema.schema_converter.scalar_registry,
                                schema.config)
    finally:
        definition.from_input = hook


def test_a_trigger_input_is_built_as_strawberry_builds_it() -> None:
    full = {"event": EventType.HANGUP, "params": {"caller_id": "+3861", "n": [1, 2]},
            "idempotencyKey": "call-1", "occurredAt": datetime(2026, 1, 2, tzinfo=UTC)}
    assert converted(full, own=True) == converted(full, own=False)
    assert converted(full, own=True).idempotency_key == "call-1"
    bare = {"event": EventType.RINGING}
    assert converted(bare, own=True) == converted(bare, own=False) == TriggerInput(
        event=EventType.RINGING)
