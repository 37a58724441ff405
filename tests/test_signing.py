"""Payload signing per action, checked with the Standard Webhooks reference library and
with the README's own snippet (for bodies that are not JSON)."""

from __future__ import annotations

import base64
import json
import os
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks import Webhook

from dispatch.signing import signature_headers
from tests.conftest import ROOT, TenantHandle
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


def readme_verify_webhook() -> Callable[..., None]:
    """``verify_webhook`` of the README's snippet, run as a reader would paste it."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```$", (ROOT / "README.md").read_text(),
                        re.MULTILINE | re.DOTALL)
    [snippet] = [textwrap.dedent(code) for _, code in blocks if "def verify_webhook(" in code]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    return namespace["verify_webhook"]


@pytest.mark.usefixtures("worker")
def test_the_readme_snippet_verifies_a_form_encoded_body_that_the_library_cannot_parse(
        tenant: TenantHandle, receiver: Receiver) -> None:
    verify_webhook = readme_verify_webhook()
    secret = new_secret()
    path = f"/{tenant.code}/signed-form"
    action = tenant.admin(ACTION, i={
        "name": "signed form", "url": f"{receiver.url}{path}",
        "bodyType": "X_WWW_FORM_URLENCODED", "signingSecret": secret,
        "bodyFields": [{"key": "caller", "value": "{{caller_id}}"},
                       {"key": "note", "value": "a&b c"}]}).data["createAction"]["id"]
    attach(tenant, "HANGUP", action)
    enable(tenant)
    settled(tenant, trigger(tenant, "HANGUP", caller_id="+3861")["triggerId"])
    [got] = receiver.wait_for(path)
    assert got.header("Content-Type") == "application/x-www-form-urlencoded"
    assert got.body == b"caller=%2B3861&note=a%26b+c"
    headers = {name: got.header(name) for name in (
        "webhook-id", "webhook-timestamp", "webhook-signature")}

    assert verify_webhook(secret, headers, got.body) is None
    with pytest.raises(ValueError, match="no webhook-signature matches"):
        verify_webhook(new_secret(), headers, got.body)
    with pytest.raises(ValueError, match="no webhook-signature matches"):
        verify_webhook(secret, headers, got.body + b"&admin=1")
    with pytest.raises(ValueError, match="too old"):
        verify_webhook(secret, headers, got.body, tolerance=-1)

    # What the README says of the Python library: the signature matches, then json.loads
    # fails on the form body, unless told not to parse it.
    with pytest.raises(json.JSONDecodeError):
        Webhook(secret).verify(got.body, headers)
    assert Webhook(secret).verify(got.body, headers, json_parse=False) is None
