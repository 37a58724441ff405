"""The Helm chart (deploy/helm/event-manager), checked without a cluster: ``helm lint
--strict``, the objects ``helm template`` makes with the default values and with every
optional part switched on, and the values its schema refuses. The helm binary is built
from the Go module proxy by tests/helm.py."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
import yaml

from dispatch.runtime import SHUTDOWN_WAIT_SECONDS, SWEEP_STOP_SECONDS
from event_manager import cli
from event_manager.config import Settings, env_name
from event_manager.metrics import QueueDepth
from tenants.catalog import MAX_TIMEOUT_SECONDS
from tenants.vault import MIN_PASSPHRASE
from tests.helm import HelmUnavailable, ensure_helm
from tests.test_packaging import final
from tests.tls import PrivateCA

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "event-manager"
SETTING_NAMES = {env_name(field) for field in Settings.model_fields}
SECRET_SETTINGS = {env_name(field) for field in
                   ("secret_key", "mongodb_url", "broker_url", "redis_url", "outbound_proxy")}
"""Read from the Secret: the key, and URLs that may hold passwords."""
CA_PEM = PrivateCA("Chart test CA").pem
CHART_SETTINGS = {env_name(field) for field in ("metrics_host", "worker_metrics_port")}
"""Written into the ConfigMap by the chart itself, from ``worker.metricsPort``."""
CLOSING_SECONDS = 5.0
"""What a worker's shutdown takes besides its two waits: Dramatiq's worker process sees
the signal within 1 s, and closing the clients took 2 s with 5 deliveries in flight."""

ALL_ON: dict[str, Any] = {
    "secret": {"existingSecret": "em-secrets"},
    "config": {"EVENT_MANAGER_DATABASE": "em_prod", "EVENT_MANAGER_ACCESS_LOG": True,
               "EVENT_MANAGER_RETRY_SCHEDULE": "5,30,120",
               "EVENT_MANAGER_MAX_RENDERED_BODY_BYTES": 2097152,
               "EVENT_MANAGER_HTTP_BODY_TIMEOUT": 12.5,
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"},
    "api": {"autoscaling": {"enabled": True},
            "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": None}},
    "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "em-tls",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"}},
    "worker": {"processes": 2, "threads": 16, "retryProcesses": 2,
               "autoscaling": {"enabled": True, "engine": "hpa"}},
    "metrics": {"monitors": {"enabled": True}},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "all on": ALL_ON,
    "keda": {**ALL_ON, "worker": {"autoscaling": {"enabled": True, "engine": "keda"}}},
    "rabbitmq": {"secret": {"brokerUrl": "amqp://event-manager:pw@rabbitmq:5672/",
                            "secretKey": "k" * 43}},
    "no worker metrics": {"worker": {"metricsPort": 0}},
    "egress": {"secret": {"outboundProxy": "http://pbx:pw@proxy.internal:3128"},
               "outboundCaBundle": CA_PEM},
}

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary: built in the background since the session started
    (``tests.helm.build_early``), or now."""
    try:
        return ensure_helm()
    except HelmUnavailable as exc:
        pytest.fail(str(exc))


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)


def values_file(folder: Path, name: str, values: dict[str, Any]) -> Path:
    path = folder / f"{name.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def values_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("values")
    return {name: values_file(folder, name, values) for name, values in VARIANTS.items()}


@pytest.fixture(scope="module")
def rendered(helm: Path, values_files: dict[str, Path]) -> dict[str, list[Doc]]:
    """Every variant's objects, as ``helm template em`` renders them."""
    found = {}
    for name, path in values_files.items():
        result = run_helm(helm, "template", "em", str(CHART), "--namespace", "calls",
                          "-f", str(path))
        assert result.returncode == 0, f"{name}: {result.stderr}"
        found[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return found


def each(rendered: dict[str, list[Doc]], kind: str) -> list[tuple[str, Doc]]:
    """``(variant, object)`` of every object of ``kind`` in every variant."""
    return [(name, doc) for name, docs in rendered.items() for doc in docs
            if doc["kind"] == kind]


def deployment(docs: list[Doc], component: str) -> Doc:
    (found,) = [doc for doc in docs if doc["kind"] == "Deployment"
                and doc["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return found


def container(docs: list[Doc], component: str) -> Doc:
    (found,) = deployment(docs, component)["spec"]["template"]["spec"]["containers"]
    return found


def config_map(docs: list[Doc]) -> dict[str, str]:
    """The settings' ConfigMap (not the CA bundle's)."""
    (found,) = [doc for doc in docs if doc["kind"] == "ConfigMap"
                and not doc["metadata"]["name"].endswith("-outbound-ca")]
    return found["data"]


def port_number(spec: Doc, port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in spec.get("ports", []) if p["name"] == port]
    return number


def variant_settings(docs: list[Doc]) -> Settings:
    return Settings(database=config_map(docs).get("EVENT_MANAGER_DATABASE", "event_manager"))


# --- lint and render ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_passes_strict_lint(helm: Path, values_files: dict[str, Path],
                                  variant: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_files[variant]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_values_render_the_api_and_the_worker_and_no_database(
        rendered: dict[str, list[Doc]]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered["defaults"])
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget",
                     "PodDisruptionBudget", "Secret", "Service"]
    for name, docs in rendered.items():
        images = {c["image"] for doc in docs if doc["kind"] == "Deployment"
                  for c in doc["spec"]["template"]["spec"]["containers"]}
        assert images == {"event-manager:0.1.0"}, name
        assert not [doc for doc in docs if doc["kind"] == "StatefulSet"], name


def test_readme_example_values_pass_lint(helm: Path, tmp_path: Path) -> None:
    """The values of README's "Production topology" example are values the chart takes."""
    readme = (ROOT / "README.md").read_text()
    example = readme.split("cat > my-values.yaml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    path = values_file(tmp_path, "readme", yaml.safe_load(example))
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(path))
    assert result.returncode == 0 and "[WARNING]" not in result.stdout, result.stdout


def test_chart_app_version_is_the_projects_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]


# --- the API -------------------------------------------------------------------------------


def test_api_serves_on_all_addresses_with_readyz_for_rotation_and_healthz_for_liveness(
        rendered: dict[str, list[Doc]]) -> None:
    for name, docs in rendered.items():
        api = container(docs, "api")
        assert api["args"][:3] == ["serve", "--host", "0.0.0.0"], name
        port = int(api["args"][api["args"].index("--port") + 1])
        assert [p["containerPort"] for p in api["ports"]] == [port]
        for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                            ("startupProbe", "/healthz")]:
            asked = api[probe]["httpGet"]
            assert (asked["path"], port_number(api, asked["port"])) == (path, port), (name, probe)


def test_pods_run_as_the_images_user_and_not_as_root(rendered: dict[str, list[Doc]]) -> None:
    (user,) = final("USER")
    uid, gid = (int(part) for part in user.split(":"))
    for name, doc in each(rendered, "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) \
            == (uid, gid), name
        (one,) = pod["containers"]
        assert one["securityContext"]["allowPrivilegeEscalation"] is False


def test_read_only_pods_may_write_their_state_folder_and_tmp(
        rendered: dict[str, list[Doc]]) -> None:
    """The image's state folder (``EVENT_MANAGER_STATE_DIR``) and /tmp (the Postman
    parsers' fork server) are writable volumes on a read-only root."""
    state_dir = next(part.split("=", 1)[1] for arguments in final("ENV")
                     for part in arguments.split()
                     if part.startswith("EVENT_MANAGER_STATE_DIR="))
    for name, doc in each(rendered, "Deployment"):
        (one,) = doc["spec"]["template"]["spec"]["containers"]
        assert one["securityContext"]["readOnlyRootFilesystem"] is True
        writable = {m["mountPath"] for m in one["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"/tmp", state_dir}, name


def test_service_and_ingress_reach_the_api_and_keep_metrics_inside(
        rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["all on"]
    api = deployment(docs, "api")
    (service,) = [doc for doc in docs if doc["kind"] == "Service"]
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"][
        "labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container(docs, "api")["ports"]}
    (ingress,) = [doc for doc in docs if doc["kind"] == "Ingress"]
    (rule,) = ingress["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert ("/graphql", "Prefix") in paths  # POST, GraphiQL and WebSocket upgrades
    for path, kind in paths:
        for inside in ("/metrics", "/healthz", "/readyz"):
            published = inside == path or (kind == "Prefix" and inside.startswith(
                path.rstrip("/") + "/"))
            assert not published, f"{inside} published by {path} ({kind})"
    for p in rule["http"]["paths"]:
        assert p["backend"]["service"] == {"name": service["metadata"]["name"],
                                           "port": {"name": port["name"]}}
    assert not [doc for doc in rendered["defaults"] if doc["kind"] == "Ingress"]


def test_api_autoscaler_scales_the_api_deployment_on_cpu(
        rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["all on"]
    (hpa,) = [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"
              and doc["spec"]["scaleTargetRef"]["name"] == deployment(docs, "api")[
                  "metadata"]["name"]]
    assert hpa["apiVersion"] == "autoscaling/v2"
    (metric,) = hpa["spec"]["metrics"]
    assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
    assert "cpu" in container(docs, "api")["resources"]["requests"]
    assert not [doc for doc in rendered["defaults"] if doc["kind"] == "HorizontalPodAutoscaler"]


# --- the worker ----------------------------------------------------------------------------


def test_worker_runs_the_worker_command_with_its_real_options(
        rendered: dict[str, list[Doc]]) -> None:
    command = typer.main.get_command(cli.app).commands["worker"]  # type: ignore[attr-defined]
    options = {option for param in command.params for option in param.opts}
    for name, docs in rendered.items():
        args = container(docs, "worker")["args"]
        assert args[0] == "worker", name
        given = dict(zip(args[1::2], args[2::2], strict=True))
        assert set(given) == {"--processes", "--threads", "--retry-processes"} <= options
        assert all(value.isdigit() for value in given.values()), args
    assert dict(zip(*[iter(container(rendered["all on"], "worker")["args"][1:])] * 2,
                    strict=True)) == {"--processes": "2", "--threads": "16",
                                      "--retry-processes": "2"}


def test_worker_grace_period_covers_its_shutdown(rendered: dict[str, list[Doc]]) -> None:
    """On SIGTERM a worker process stops its recovery sweep, lets its deliveries run until
    they end (an action's timeout at most) or the shutdown wait is over, then closes its
    clients; Kubernetes must not kill it before."""
    needed = SWEEP_STOP_SECONDS + min(MAX_TIMEOUT_SECONDS, SHUTDOWN_WAIT_SECONDS) \
        + CLOSING_SECONDS
    for name, docs in rendered.items():
        grace = deployment(docs, "worker")["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"]
        assert grace >= needed, f"{name}: {grace} s < {needed} s"


def test_worker_probes_ask_the_metrics_port_of_its_first_process(
        rendered: dict[str, list[Doc]]) -> None:
    """The worker serves no HTTP but its processes' metrics: process n on the metrics port
    + n, on the pod's address (the kubelet does not probe 127.0.0.1)."""
    for name, docs in rendered.items():
        worker, data = container(docs, "worker"), config_map(docs)
        settings = Settings(**{key.removeprefix("EVENT_MANAGER_").lower(): data[key]
                               for key in CHART_SETTINGS})
        if not settings.worker_metrics_port:
            assert "ports" not in worker and "livenessProbe" not in worker, name
            continue
        assert settings.metrics_host == "0.0.0.0", name
        args = dict(zip(worker["args"][1::2], worker["args"][2::2], strict=True))
        processes = int(args["--processes"]) + int(args["--retry-processes"])
        assert [p["containerPort"] for p in worker["ports"]] == [
            settings.worker_metrics_port + n for n in range(processes)], name
        for probe in ("readinessProbe", "livenessProbe"):
            asked = worker[probe]["httpGet"]
            assert (asked["path"], port_number(worker, asked["port"])) == (
                "/metrics", settings.worker_metrics_port), (name, probe)


def test_worker_autoscaler_follows_the_queue_depth_the_api_reports(
        rendered: dict[str, list[Doc]]) -> None:
    """The HPA (External metric, through the Prometheus Adapter) or the KEDA ScaledObject
    scales the worker Deployment on event_manager_queue_depth of the installation's two
    delivery queues, as the API's collector names them, leaving out the delay queues
    (retries not due yet)."""
    for variant, kind in [("all on", "HorizontalPodAutoscaler"), ("keda", "ScaledObject")]:
        docs = rendered[variant]
        settings = variant_settings(docs)
        depth = QueueDepth("redis://127.0.0.1:1/0", settings.queue_name)
        depth.redis = SimpleNamespace(llen=lambda key: 0)  # type: ignore[assignment]
        (family,) = depth.collect()
        reported = {sample.labels["queue"] for sample in family.samples}
        waiting = {settings.queue_name, settings.later_queue_name}
        assert waiting < reported
        worker = deployment(docs, "worker")["metadata"]["name"]
        (scaler,) = [doc for doc in docs if doc["kind"] == kind
                     and doc["spec"]["scaleTargetRef"]["name"] == worker]
        assert scaler["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        if kind == "HorizontalPodAutoscaler":
            assert scaler["apiVersion"] == "autoscaling/v2"
            (metric,) = scaler["spec"]["metrics"]
            assert metric["type"] == "External"
            assert metric["external"]["metric"]["name"] == family.name
            (selected,) = metric["external"]["metric"]["selector"]["matchExpressions"]
            assert (selected["key"], selected["operator"]) == ("queue", "In")
            assert set(selected["values"]) == waiting
            assert metric["external"]["target"]["type"] == "AverageValue"
        else:
            (trigger,) = scaler["spec"]["triggers"]
            assert trigger["type"] == "prometheus"
            query = trigger["metadata"]["query"]
            assert f"{family.name}{{queue=~" in query and "max by (queue)" in query
            assert {q.replace(".", "[.]") for q in waiting} == set(
                query.split('"')[1].split("|"))
        assert "replicas" not in deployment(docs, "worker")["spec"], variant
    for name in ("defaults", "rabbitmq"):
        assert not [doc for doc in rendered[name]
                    if doc["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]


def test_disruption_budgets_cover_the_api_and_the_worker(rendered: dict[str, list[Doc]]) -> None:
    for name, docs in rendered.items():
        budgets = [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
        assert len(budgets) == 2, name
        for component in ("api", "worker"):
            selector = deployment(docs, component)["spec"]["selector"]["matchLabels"]
            assert [b for b in budgets if b["spec"]["selector"]["matchLabels"] == selector]


# --- settings ------------------------------------------------------------------------------


def environment_names(docs: list[Doc]) -> set[str]:
    """Every EVENT_MANAGER_* name the objects give a process: env entries, the keys they
    take from Secrets and ConfigMaps, and the keys of those the chart makes."""
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] in ("ConfigMap", "Secret"):
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        if doc["kind"] == "Deployment":
            for one in doc["spec"]["template"]["spec"]["containers"]:
                for entry in one.get("env", []):
                    names.add(entry["name"])
                    for ref in entry.get("valueFrom", {}).values():
                        names.add(ref["key"])
    return {name for name in names if name.startswith("EVENT_MANAGER_")}


def test_every_setting_name_in_the_chart_is_a_setting(rendered: dict[str, list[Doc]]) -> None:
    for name, docs in rendered.items():
        assert environment_names(docs) - SETTING_NAMES == set(), name
        assert SECRET_SETTINGS | CHART_SETTINGS <= environment_names(docs), name


def test_secret_key_and_urls_come_from_a_secret_never_a_config_map(
        rendered: dict[str, list[Doc]]) -> None:
    for name, docs in rendered.items():
        assert not SECRET_SETTINGS & set(config_map(docs)), name
        secrets = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Secret"}
        existing = VARIANTS[name].get("secret", {}).get("existingSecret")
        assert (not secrets) if existing else len(secrets) == 1, name
        for component in ("api", "worker"):
            env = {entry["name"]: entry for entry in container(docs, component)["env"]}
            for setting in SECRET_SETTINGS:
                assert "value" not in env[setting], (name, setting)
                ref = env[setting]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == existing or ref["name"] in secrets, (name, setting)
                assert ref["key"] == setting
                if ref["name"] in secrets:
                    assert setting in secrets[ref["name"]]["data"], (name, setting)


def test_the_proxy_comes_from_the_secret_and_the_ca_bundle_is_mounted_in_the_workers(
        rendered: dict[str, list[Doc]]) -> None:
    """The proxy URL may hold a password: the Secret carries it (optional, so that an
    existing Secret without it still works), never a ConfigMap. The CA bundle is a
    ConfigMap of its own, mounted read-only into the workers, which are told its path;
    the API sends nothing and gets neither."""
    import base64

    docs = rendered["egress"]
    (secret,) = [doc for doc in docs if doc["kind"] == "Secret"]
    proxy = "http://pbx:pw@proxy.internal:3128"
    assert base64.b64decode(secret["data"]["EVENT_MANAGER_OUTBOUND_PROXY"]).decode() == proxy
    assert all(proxy not in str(doc) for doc in docs if doc["kind"] != "Secret")
    for component in ("api", "worker"):
        env = {e["name"]: e for e in container(docs, component)["env"]}
        assert env["EVENT_MANAGER_OUTBOUND_PROXY"]["valueFrom"]["secretKeyRef"]["optional"]
    (bundle,) = [doc for doc in docs if doc["kind"] == "ConfigMap"
                 and doc["metadata"]["name"].endswith("-outbound-ca")]
    assert bundle["data"]["outbound-ca.pem"] == CA_PEM
    worker = container(docs, "worker")
    env = {e["name"]: e.get("value") for e in worker["env"]}
    [mount] = [m for m in worker["volumeMounts"] if m["name"] == "outbound-ca"]
    assert env["EVENT_MANAGER_OUTBOUND_CA_FILE"] == mount["mountPath"]
    assert mount["readOnly"] and mount["subPath"] == "outbound-ca.pem"
    volumes = deployment(docs, "worker")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "outbound-ca", "configMap": {"name": bundle["metadata"]["name"]}} in volumes
    api = container(docs, "api")
    assert "EVENT_MANAGER_OUTBOUND_CA_FILE" not in {e["name"] for e in api["env"]}
    assert all(m["name"] != "outbound-ca" for m in api["volumeMounts"])
    for name, others in rendered.items():  # without a bundle: no ConfigMap, no mount
        if name != "egress":
            assert all(not d["metadata"]["name"].endswith("-outbound-ca") for d in others)
            assert "EVENT_MANAGER_OUTBOUND_CA_FILE" not in {
                e["name"] for e in container(others, "worker")["env"]}


def test_generated_secret_key_is_long_enough_and_a_given_one_is_kept(
        rendered: dict[str, list[Doc]]) -> None:
    import base64

    def key(docs: list[Doc]) -> str:
        (secret,) = [doc for doc in docs if doc["kind"] == "Secret"]
        return base64.b64decode(secret["data"]["EVENT_MANAGER_SECRET_KEY"]).decode()

    assert len(key(rendered["defaults"])) >= MIN_PASSPHRASE
    assert key(rendered["rabbitmq"]) == VARIANTS["rabbitmq"]["secret"]["secretKey"]


def test_config_map_values_are_valid_settings(rendered: dict[str, list[Doc]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name, docs in rendered.items():
        with monkeypatch.context() as patch:
            for key in SETTING_NAMES:
                patch.delenv(key, raising=False)
            for key, value in config_map(docs).items():
                patch.setenv(key, value)
            settings = Settings()
        for key, value in VARIANTS[name].get("config", {}).items():
            if key.startswith("OTEL_"):  # read by OpenTelemetry's SDK, not Settings
                continue
            field = key.removeprefix("EVENT_MANAGER_").lower()
            assert str(getattr(settings, field)) == str(value), (name, key)


def test_schema_takes_every_setting_but_those_of_the_secret_and_the_chart() -> None:
    """A setting added to Settings must be added to values.schema.json (as it must to
    docker-compose.yml); those the chart sets are refused in ``config``: the Secret's,
    the worker's metrics address and port, ``--retry-processes`` and the image's state
    folder."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    accepted = set(schema["properties"]["config"]["properties"])
    owned = SECRET_SETTINGS | CHART_SETTINGS | {env_name("retry_processes"),
                                                 env_name("state_dir")}
    assert accepted == SETTING_NAMES - owned
    assert schema["properties"]["config"]["additionalProperties"] is False


def test_tracing_variables_reach_the_pods(rendered: dict[str, list[Doc]]) -> None:
    """``OTEL_*`` keys of ``config`` go into the ConfigMap (README, "Tracing")."""
    assert config_map(rendered["all on"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://otel-collector:4318")


@pytest.mark.parametrize("option, value, named", [
    ("--set", "api.replicas=-1", "/api/replicas"),
    ("--set-string", "worker.replicas=two", "/worker/replicas"),
    ("--set", "worker.autoscaling.engine=cron", "/worker/autoscaling/engine"),
    ("--set", "config.EVENT_MANAGER_NOT_A_SETTING=1", "EVENT_MANAGER_NOT_A_SETTING"),
    ("--set", "config.OTEL_lower=1", "OTEL_lower"),
    ("--set", "config.EVENT_MANAGER_SECRET_KEY=abc", "EVENT_MANAGER_SECRET_KEY"),
    ("--set", "config.EVENT_MANAGER_DATABASE=a.b", "/config/EVENT_MANAGER_DATABASE"),
    ("--set", "secret.brokerUrl=kafka://broker:9092", "/secret/brokerUrl"),
    ("--set", "secret.outboundProxy=socks5://proxy:1080", "/secret/outboundProxy"),
    ("--set", "outboundCaBundle=not a certificate", "/outboundCaBundle"),
    ("--set", "config.EVENT_MANAGER_OUTBOUND_PROXY=http://proxy:3128",
     "EVENT_MANAGER_OUTBOUND_PROXY"),
])
def test_values_schema_refuses_a_bad_value_and_names_it(helm: Path, option: str, value: str,
                                                        named: str) -> None:
    for command in (["template", "em"], ["lint", "--strict"]):
        result = run_helm(helm, *command, str(CHART), option, value)
        assert result.returncode != 0, (command, value)
        assert named in result.stdout + result.stderr, result.stdout + result.stderr
