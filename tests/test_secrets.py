"""No secret is ever shown: not in any GraphQL output, not in an activity row, not in a
log line, and not in the database in plain text (it is sealed there); nor in any of the
forms a secret takes on the way out (percent-encoded, form-encoded, JSON-escaped, base64
in Basic auth)."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import httpx
import pytest
from cryptography.fernet import Fernet
from yarl import URL

from tenants.database import Database
from tenants.store import TenantStore
from tenants.vault import SecretKeyError, Vault
from tests.conftest import Server, TenantHandle, run_cli
from tests.receiver import Receiver, Reply
from tests.test_delivery import attach, enable, make_action, settled
from tests.test_subscription import subscription, until_live

pytestmark = pytest.mark.usefixtures("worker")

ACTION_FIELDS = """id name url query { key value } headers { key value } rawBody
    authorization { type apiKeyName apiKeyValue apiKeyIn username password token }
    signingSecret undefinedParameters"""
ROW = """id actionName status message httpStatus responseSnippet unresolvedParameters
    request { method url headers { key value } }"""


def secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(8)}"


def test_no_secret_in_outputs_activity_logs_or_stored_plain(
        tenant: TenantHandle, receiver: Receiver, api: Server, worker: Path,
        mongo: Any, settings: Any) -> None:
    token, api_key, password, param = (secret("bearer"), secret("apikey"), secret("basic"),
                                       secret("param"))
    signing = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    all_secrets = [token, api_key, password, param, signing]
    path = f"/{tenant.code}/leak"
    tenant.admin("mutation($v: String!) { createParameter(input: {tag: \"crm_secret\", "
                 "value: $v, secret: true}) { tag } }", v=param).data
    made = []
    for name, auth, own in (
        ("bearer", {"type": "BEARER_TOKEN", "token": token}, token),
        ("apikey", {"type": "API_KEY", "apiKeyName": "key", "apiKeyValue": api_key,
                    "apiKeyIn": "QUERY"}, api_key),
        ("basic", {"type": "BASIC_AUTH", "username": "crm", "password": password}, password),
    ):
        # The receiver echoes what it got: a careless snippet would show the secrets.
        receiver.script(f"{path}/{name}", Reply(200, body=f"saw {own} and {param}"))
        reply = tenant.admin(f"mutation($i: ActionInput!) {{ createAction(input: $i) "
                             f"{{ {ACTION_FIELDS} }} }}", i={
            "name": name, "url": f"{receiver.url}{path}/{name}?p={{{{crm_secret}}}}",
            "headers": [{"key": "X-Secret", "value": "{{crm_secret}}"}],
            "bodyType": "RAW", "rawContentType": "application/json",
            "rawBody": '{"s": "{{crm_secret}}"}', "authorization": auth,
            "signingSecret": signing})
        made.append(reply.body)
    attach(tenant, "HANGUP", *[a["data"]["createAction"]["id"] for a in made])
    enable(tenant)
    fired = tenant.admin(f"mutation {{ triggerEvent(input: {{event: HANGUP}}) {{ triggerId "
                         f"activities {{ {ROW} }} }} }}").body
    rows = settled(tenant, fired["data"]["triggerEvent"]["triggerId"])
    assert {r["status"] for r in rows} == {"SUCCEEDED"}
    for name in ("bearer", "apikey", "basic"):  # the secrets were really sent
        [got] = receiver.wait_for(f"{path}/{name}")
        assert param in got.body.decode()

    outputs = [made, fired, rows]
    outputs.append(tenant.admin(f"{{ actions {{ {ACTION_FIELDS} }} parameters {{ tag value }} "
                                f"activity {{ items {{ {ROW} }} }} masterActions {{ id }} }}").body)
    outputs.append(tenant.admin(f"""mutation($id: ID!) {{ testEvent(event: HANGUP,
        actionIds: [$id]) {{ activities {{ {ROW} }} }} }}""",
                                id=made[0]["data"]["createAction"]["id"]).body)
    shown = json.dumps(outputs)
    assert "********" in shown
    stored = json.dumps([doc for kind in tenant.snapshot().values() for doc in kind],
                        default=str)

    logs = api.log.read_text() + worker.read_text()
    # the logs are the ones of this run's processes (the API logs no line per request)
    assert "Application startup complete" in logs and "delivery clients open" in logs
    for value in all_secrets:
        assert value not in shown, f"shown: {value}"
        assert value not in stored, f"stored in plain: {value}"
        assert value not in logs, f"logged: {value}"
    # The sealed values open to the right secrets: nothing was lost on the way.
    vault: Vault = tenant.vault
    sealed = tenant.collection("actions").find_one({"name": "bearer"})
    assert vault.open(sealed["auth"]["token"]) == token
    assert vault.open(sealed["signing_secret"]) == signing


def forms(secret: str) -> set[str]:
    """Every form ``secret`` may take on the way out, as a leak would show it."""
    quoted = {quote(secret, safe=""), quote(secret), quote_plus(secret),
              urlencode({"k": secret})[2:], URL("http://h/" + quote(secret, safe="")).raw_path[3:]}
    quoted |= {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), q) for q in quoted}
    return {secret, *quoted, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            html.escape(secret)}


def test_no_form_of_a_secret_in_rows_live_messages_logs_or_metrics(
        tenant: TenantHandle, receiver: Receiver, api: Server, worker: Path,
        worker_metrics_url: str) -> None:
    """A secret in each place of an action (URL path and host, query, header, JSON,
    form and multipart bodies, Basic auth, bearer token, API key, secret parameter),
    sent to a receiver that echoes the request and to destinations whose errors quote
    the URL; no form of it in any output."""
    tag = secrets.token_hex(4)
    param = f"p@ss wörd/+&\"<'{tag}"  # every character encoded differently somewhere
    password, token = f"b@sic:{tag} ü", f"tok-{secrets.token_hex(8)}"
    credentials = base64.b64encode(f"crm:{password}".encode()).decode()
    tenant.admin("mutation($v: String!) { createParameter(input: {tag: \"pw\", value: $v, "
                 "secret: true}) { tag } }", v=param).data
    tenant.admin('mutation { createParameter(input: {tag: "port", value: "x"}) { tag } }').data
    echo = f"{receiver.url}/{tenant.code}/echo"
    receiver.echo(f"/{tenant.code}/echo")
    ids = [
        make_action(tenant, name="json", url=f"{echo}/{{{{pw}}}}?q={{{{pw}}}}",
                    query=[{"key": "r", "value": "{{pw}}"}],
                    headers=[{"key": "X-S", "value": "{{pw}}"}], bodyType="RAW",
                    rawContentType="application/json", rawBody='{"s": "{{pw}}"}',
                    authorization={"type": "BEARER_TOKEN", "token": token}),
        make_action(tenant, name="form", url=f"{echo}/form", bodyType="X_WWW_FORM_URLENCODED",
                    bodyFields=[{"key": "s", "value": "{{pw}}"}],
                    authorization={"type": "BASIC_AUTH", "username": "crm",
                                   "password": password}),
        make_action(tenant, name="multipart", url=f"{echo}/multipart", bodyType="FORM_DATA",
                    bodyFields=[{"key": "s", "value": "{{pw}}"}],
                    authorization={"type": "API_KEY", "apiKeyName": "key",
                                   "apiKeyValue": "{{pw}}", "apiKeyIn": "QUERY"}),
        make_action(tenant, name="invalid", url="http://127.0.0.1:{{port}}/{{pw}}"),
        make_action(tenant, name="dns", url="http://x{{pw}}.invalid/", timeoutSeconds=2),
    ]
    attach(tenant, "HANGUP", *ids)
    enable(tenant)
    live: list[str] = []
    with subscription(api.url, tenant.admin.key,
                      f"subscription {{ activity {{ triggerId {ROW} }} }}") as ws:
        until_live(ws, tenant)
        fired = tenant.admin("mutation { triggerEvent(input: {event: HANGUP}) "
                             "{ triggerId } }").data["triggerEvent"]["triggerId"]
        ended = set()
        while len(ended) < len(ids):
            live.append(ws.recv(timeout=30))
            row = json.loads(live[-1])["payload"]["data"]["activity"]
            if row["triggerId"] == fired and row["status"] in ("SUCCEEDED", "FAILED"):
                ended.add(row["id"])
    rows = {r["actionName"]: r for r in settled(tenant, fired)}

    assert param in receiver.received(f"/{tenant.code}/echo/{param}")[0].path  # really sent
    assert "not a valid URL" in rows["invalid"]["message"]
    assert "DNS lookup failed" in rows["dns"]["message"]
    for name in ("json", "form", "multipart"):
        assert rows[name]["status"] == "SUCCEEDED"
        assert rows[name]["responseSnippet"].count("********") >= 2, rows[name]
    outputs = {
        "rows": json.dumps(rows, ensure_ascii=False),
        "live": "\n".join(live),
        "worker log": worker.read_text(),
        "API log": api.log.read_text(),
        "metrics": httpx.get(worker_metrics_url, timeout=10).text
        + httpx.get(f"{api.url}/metrics", timeout=10).text,
    }
    for secret in (param, password, token, credentials):
        for form in forms(secret):
            for where, text in outputs.items():
                assert form not in text, f"{form!r} ({secret!r}) in the {where}"


def test_rotation_reseals_every_secret_with_the_new_key(tenant: TenantHandle,
                                                       settings: Any) -> None:
    """New key first, old key second: reseal, then the old key alone opens nothing."""
    tenant.admin('mutation { createAction(input: {name: "rot", url: "https://crm.test", '
                 'authorization: {type: BEARER_TOKEN, token: "tok-1"}}) { id } }').data
    tenant.admin('mutation { createParameter(input: {tag: "pin", value: "1234", '
                 'secret: true}) { tag } }').data
    tenant.collection("parameters").insert_one(  # written before sealing existed
        {"tag": "legacy", "tag_key": "legacy", "value": "plain-old", "secret": True,
         "description": ""})
    new_key = Fernet.generate_key().decode()
    rotated = settings.model_copy(update={"secret_key": f"{new_key},{settings.secret_key}"})

    async def reseal() -> int:
        db = Database(rotated)
        try:
            store = TenantStore(db, {"code": tenant.code, "master": False})
            return await store.reseal()
        finally:
            await db.close()

    assert asyncio.run(reseal()) == 3
    new, old = Vault([new_key.encode()]), tenant.vault
    token = tenant.collection("actions").find_one({"name": "rot"})["auth"]["token"]
    pin = tenant.collection("parameters").find_one({"tag": "pin"})["value"]
    legacy = tenant.collection("parameters").find_one({"tag": "legacy"})["value"]
    assert (new.open(token), new.open(pin), new.open(legacy)) == ("tok-1", "1234", "plain-old")
    with pytest.raises(SecretKeyError):
        old.open(token)


def test_rotate_secrets_command(env: dict[str, str], mongo: Any, settings: Any) -> None:
    """The command over a database of its own (resealing the shared test database would
    leave the running API without the key of other tests' secrets)."""
    database = f"{settings.database}_rot"
    old = Vault([settings.secret_key.encode()])
    mongo[f"{database}_system"]["tenants"].insert_one(
        {"_id": "acme", "code": "acme", "name": "Acme", "master": False,
         "event_manager_enabled": True})
    actions = mongo[f"{database}_tenants"]["t_acme_actions"]
    actions.insert_one({"name": "a", "auth": {"type": "BEARER_TOKEN", "token": old.seal("t1")}})
    new_key = Fernet.generate_key().decode()
    try:
        result = run_cli({**env, "EVENT_MANAGER_DATABASE": database,
                          "EVENT_MANAGER_SECRET_KEY": f"{new_key},{settings.secret_key}"},
                         "rotate-secrets")
        assert "acme: 1 document resealed" in result.stdout
        token = actions.find_one({"name": "a"})["auth"]["token"]
        assert Vault([new_key.encode()]).open(token) == "t1"
    finally:
        mongo.drop_database(f"{database}_system")
        mongo.drop_database(f"{database}_tenants")
