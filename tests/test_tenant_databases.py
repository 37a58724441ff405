"""Tenants spread over several databases (``EVENT_MANAGER_TENANT_DATABASES``, issue 18):
each tenant's collections in the database its code hashes to, everything working as with
one, and a process started with another number than the installation's refused."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from event_manager.config import Settings, environment
from tests.conftest import CLI, TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Receiver
from tests.support import api_process
from tests.test_delivery import ROW, attach, enable, make_action, trigger

DATABASES = 4


def test_a_tenant_is_in_the_database_its_code_hashes_to() -> None:
    one = Settings(database="em", secret_key=Fernet.generate_key().decode())
    assert one.tenant_database_of("acme") == "em_tenants"
    assert one.tenant_database_names == ["em_tenants"]
    many = one.model_copy(update={"tenant_databases": 8})
    codes = [f"t{i}" for i in range(800)]
    spread = Counter(many.tenant_database_of(code) for code in codes)
    assert set(spread) == set(many.tenant_database_names) == {f"em_tenants_{n}"
                                                               for n in range(8)}
    assert min(spread.values()) > 60, spread  # about 100 each
    assert [many.tenant_database_of(c) for c in codes] == [
        many.tenant_database_of(c) for c in codes], "the same code, the same database"


@pytest.fixture(scope="module")
def spread(settings: Settings, mongo: Any, redis_client: redis.Redis,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("spread"),
                      "spread", tenant_databases=DATABASES) as place:
        yield place


def test_tenants_in_several_databases_work_as_in_one(
        spread: Installation, mongo: Any, receiver: Receiver) -> None:
    """Eight tenants, each made, configured, triggered and read back: every delivery sent,
    each tenant's collections in its own database only, the databases all used."""
    tenants = [make_tenant(spread.system, mongo, spread.settings) for _ in range(8)]
    for tenant in tenants:
        action = make_action(tenant, name="CRM", url=f"{receiver.url}/{tenant.code}/hook")
        attach(tenant, "HANGUP", action)
        enable(tenant)
        trigger(tenant, "HANGUP")
    for tenant in tenants:
        receiver.wait_for(f"/{tenant.code}/hook", 1)
        rows = wait_until(lambda t=tenant: (found := t.admin(
            f"{{ activity(first: 5) {{ items {{ {ROW} }} }} }}").data["activity"]["items"])
            and found[0]["status"] == "SUCCEEDED" and found, what="the row succeeded")
        assert len(rows) == 1
        home = spread.settings.tenant_database_of(tenant.code)
        for name in spread.settings.tenant_database_names:
            names = [n for n in mongo[name].list_collection_names()
                     if n.startswith(f"t_{tenant.code}_")]
            if name == home:
                assert f"t_{tenant.code}_activity" in names and f"t_{tenant.code}_actions" in names
            else:
                assert names == [], f"{tenant.code}'s collections in {name}"
    used = {spread.settings.tenant_database_of(t.code) for t in tenants}
    assert len(used) > 1, used


def start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_process_with_another_number_of_databases_is_refused(
        spread: Installation, tmp_path: Any) -> None:
    """The installation was started with 4: a worker or an API process given 2 would look
    for tenants' collections in the wrong databases, so neither starts, saying why."""
    other = {**spread.env, "EVENT_MANAGER_TENANT_DATABASES": "2"}
    refused = start(other, "worker", "--threads", "1")
    assert refused.returncode != 0
    said = ("EVENT_MANAGER_TENANT_DATABASES is 2, but this installation's tenants are in 4 "
            "databases; set it to 4 (tenants are not moved between databases)")
    assert said in refused.stderr
    log = tmp_path / "api.log"
    with pytest.raises(AssertionError, match="exited at start"), api_process(other, log):
        pass
    assert said in log.read_text()
    made = start(other, "create-key", "--role", "SYSTEM_ADMIN", "--label", "x")
    assert made.returncode != 0 and said in made.stderr


def test_an_installation_made_before_the_setting_keeps_one_database(
        settings: Settings, mongo: Any, tenant: TenantHandle) -> None:
    """The session's installation has tenants in one database: it is recorded so, and a
    process given 4 would be refused."""
    layout = mongo[settings.system_database]["installation"].find_one({"_id": "layout"})
    assert layout == {"_id": "layout", "tenant_databases": 1}
    env = {**os.environ, **environment(settings), "EVENT_MANAGER_TENANT_DATABASES": "4"}
    refused = start(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "x")
    assert "EVENT_MANAGER_TENANT_DATABASES is 4, but this installation's tenants are in " \
           "1 database; set it to 1" in refused.stderr
