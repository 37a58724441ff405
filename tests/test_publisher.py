"""Live publishing (dispatch/live.py Publisher) against the real Redis."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
import redis.asyncio as aioredis

from dispatch.live import MESSAGE_BYTES, Publisher, _messages, decode, encode
from event_manager.config import Settings
from tests.support import Pipelines, free_port


def test_rows_published_at_once_share_round_trips_and_keep_their_order(
        settings: Settings, redis_client) -> None:
    prefix = f"pub-{secrets.token_hex(4)}:"

    async def go() -> tuple[list[int], int, int]:
        client = aioredis.from_url(settings.redis_url)
        listener = client.pubsub()
        await listener.subscribe(prefix + "acme")
        await listener.get_message(timeout=1)  # the subscription's confirmation
        publisher = Publisher(client, prefix)
        pipelines = Pipelines(client)
        await asyncio.gather(*(publisher.publish("acme", [{"seq": n}]) for n in range(60)))
        seen, messages = [], 0
        while len(seen) < 60:
            message = await listener.get_message(timeout=2)
            assert message is not None, f"only {len(seen)} rows arrived"
            seen += [row["seq"] for row in decode(message["data"])]
            messages += 1
        await listener.aclose()
        await client.aclose()
        return seen, pipelines.sent, messages

    seen, pipelines, messages = asyncio.run(go())
    assert seen == list(range(60))
    assert pipelines < 10  # one for the first row, then the rows that queued behind it
    assert messages == pipelines  # one message per tenant and pipeline, not one per row


def test_a_redis_that_is_down_is_logged_and_nothing_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}",
                                   socket_connect_timeout=1)
        publisher = Publisher(client, "down:")
        await asyncio.wait_for(asyncio.gather(
            *(publisher.publish("acme", [{"seq": n}]) for n in range(5))), timeout=10)
        assert publisher.sending is None and publisher.pending == []
        await client.aclose()

    with caplog.at_level(logging.WARNING, logger="event_manager.live"):
        asyncio.run(go())
    assert any("live activity not published" in r.getMessage() for r in caplog.records)


def test_a_caller_gone_stops_no_one_elses_rows(settings: Settings, redis_client) -> None:
    prefix = f"pub-{secrets.token_hex(4)}:"

    async def go() -> list[int]:
        client = aioredis.from_url(settings.redis_url)
        listener = client.pubsub()
        await listener.subscribe(prefix + "acme")
        await listener.get_message(timeout=1)
        publisher = Publisher(client, prefix)
        first = asyncio.create_task(publisher.publish("acme", [{"seq": 0}]))
        gone = asyncio.create_task(publisher.publish("acme", [{"seq": 1}]))
        last = asyncio.create_task(publisher.publish("acme", [{"seq": 2}]))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, last)
        seen = []
        while (message := await listener.get_message(timeout=1)) is not None:
            seen += [row["seq"] for row in decode(message["data"])]
        await listener.aclose()
        await client.aclose()
        return seen

    assert asyncio.run(go()) == [0, 1, 2]


def test_a_message_holds_rows_or_the_one_row_published_before_rows_were_grouped() -> None:
    assert decode('[{"seq":1},{"seq":2,"at":{"$date":"2026-01-01T00:00:00+00:00"}}]')[1][
        "at"].year == 2026
    assert decode('{"seq":1}') == [{"seq": 1}]


def test_rows_published_together_go_in_messages_of_at_most_1_mib() -> None:
    """Two 20 MB rows published together once dropped every API's listener; rows are small
    now (cut), and many of them still never make one message over the bound."""
    rows = [encode({"n": n, "snippet": "s" * 200_000}) for n in range(12)]
    messages = list(_messages(rows))
    assert len(messages) > 1 and all(len(m) <= MESSAGE_BYTES for m in messages)
    assert [row["n"] for m in messages for row in decode(m)] == list(range(12))
