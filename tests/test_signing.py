"""Payload signing per action, checked with the Standard Webhooks reference library."""

from __future__ import annotations

import base64
import os

import pytest
from standardwebhooks import Webhook

from dispatch.signing import signature_headers
from tests.conftest import TenantHandle
from tests.receiver import Receiver, Reply
from tests.test_delivery import attach, enable, settled, trigger

ACTION = """mutation($i: ActionInput!) { createAction(input: $i) { id signingSecret } }"""
UPDATE = """mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) {
    signingSecret } }"""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_the_signature_matches_the_specification_example() -> None:
    """The example of the Standard Webhooks reference libraries' tests."""
    headers = signature_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                b'{"test": 2432232314}')
    assert headers == [("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                       ("webhook-timestamp", "1614265330"),
                       ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]


@pytest.mark.parametrize("secret", [
    "s3cret", "whsec_", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode(),
    "whsec_" + base64.b64encode(os.urandom(65)).decode(),
])
def test_a_secret_that_is_not_whsec_base64_is_refused(tenant: TenantHandle, secret: str) -> None:
    before = tenant.snapshot()
    reply = tenant.admin(ACTION, i={"name": "signed", "url": "https://crm.test/h",
                                    "signingSecret": secret})
    assert reply.code == "BAD_USER_INPUT" and reply.field == "input.signingSecret"
    assert tenant.snapshot() == before


def test_the_secret_is_masked_sealed_kept_and_removable(tenant: TenantHandle) -> None:
    secret = new_secret()
    made = tenant.admin(ACTION, i={"name": "signed", "url": "https://crm.test/h",
                                   "signingSecret": secret}).data["createAction"]
    assert made["signingSecret"] == "********"
    stored = tenant.collection("actions").find_one({"name": "signed"})["signing_secret"]
    assert stored.startswith("enc:v1:") and tenant.vault.open(stored) == secret
    for keep in (None, "********"):
        kept = tenant.admin(UPDATE, id=made["id"], i={"name": "signed", "url": "https://crm.test/h",
                                                      "signingSecret": keep}).data
        assert kept["updateAction"]["signingSecret"] == "********"
    off = tenant.admin(UPDATE, id=made["id"], i={"name": "signed", "url": "https://crm.test/h",
                                                 "signingSecret": ""}).data
    assert off["updateAction"]["signingSecret"] is None


@pytest.mark.usefixtures("worker")
def test_signed_requests_verify_and_keep_their_id_across_retries(
        tenant: TenantHandle, receiver: Receiver) -> None:
    secret = new_secret()
    path = f"/{tenant.code}/signed"
    receiver.script(path, Reply(503))
    action = tenant.admin(ACTION, i={
        "name": "signed", "url": f"{receiver.url}{path}", "bodyType": "RAW",
        "rawContentType": "application/json", "rawBody": '{"caller": "{{caller_id}}"}',
        "signingSecret": secret}).data["createAction"]["id"]
    plain = tenant.admin(ACTION, i={"name": "plain", "url": f"{receiver.url}{path}-plain"}
                         ).data["createAction"]["id"]
    attach(tenant, "HANGUP", action, plain)
    enable(tenant)
    fired = trigger(tenant, "HANGUP", caller_id="+3861")
    settled(tenant, fired["triggerId"])
    first, second = receiver.wait_for(path, count=2)
    row_id = next(a["id"] for a in fired["activities"] if a["actionId"] == action)
    for got in (first, second):
        headers = {"webhook-id": got.header("webhook-id"),
                   "webhook-timestamp": got.header("webhook-timestamp"),
                   "webhook-signature": got.header("webhook-signature")}
        assert Webhook(secret).verify(got.body, headers) == {"caller": "+3861"}
        assert headers["webhook-id"] == f"msg_{row_id}"  # the same on the retry
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(new_secret()).verify(first.body, {k: first.header(k) for k in (
            "webhook-id", "webhook-timestamp", "webhook-signature")})
    [unsigned] = receiver.wait_for(f"{path}-plain")
    assert unsigned.header("webhook-signature") is None
