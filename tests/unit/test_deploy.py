"""deploy/ (Kubernetes manifests, Prometheus alerts, the Grafana dashboard) and the
Dockerfile, checked without Docker or a Kubernetes cluster.

Every image, port, path, setting, command and metric name the files mention is held to
the code: settings to config/settings.py, metric names to the collectors a real worker
registers, paths to the paths its metrics server answers, commands to the CLI.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric
from typer.testing import CliRunner

from millstream import App
from millstream.cli import cli
from millstream.config import Settings, load_settings
from millstream.config.settings import ENV_PREFIX
from millstream.loader import load_app
from millstream.processors.health import HEALTH_PATH, METRICS_PATH, READY_PATH, HealthServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
Manifest = dict[str, Any]


# -- reading the files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        loaded = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert loaded, f"{path.name} holds no document"
        documents.extend(loaded)
    return documents


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    [manifest] = of_kind(manifests, kind)
    return manifest


def pod(manifests: list[Manifest]) -> Manifest:
    spec: Manifest = one(manifests, "Deployment")["spec"]["template"]
    return spec


def container(manifests: list[Manifest]) -> Manifest:
    [worker] = pod(manifests)["spec"]["containers"]
    return dict(worker)


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def instructions(name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in dockerfile() if line.startswith(name + " ")]


def docker_env() -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE pairs)."""
    stages = "\n".join(dockerfile()).split("\nFROM ")
    env = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def settings_env(manifests: list[Manifest]) -> dict[str, str]:
    """Every environment variable the worker container gets from its ConfigMap and Secret."""
    names = {
        source[kind]["name"]
        for source in container(manifests)["envFrom"]
        for kind in ("configMapRef", "secretRef")
        if kind in source
    }
    env: dict[str, str] = {}
    for manifest in manifests:
        if manifest["kind"] in ("ConfigMap", "Secret") and manifest["metadata"]["name"] in names:
            env.update(manifest.get("data", {}))
            env.update(manifest.get("stringData", {}))
    return env


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


@pytest.fixture(scope="module")
def app(monkeypatch_module: pytest.MonkeyPatch, manifests: list[Manifest]) -> App:
    """The app the Deployment runs."""
    monkeypatch_module.syspath_prepend(str(ROOT))
    args = container(manifests)["args"]
    assert args[0] == "worker"
    loaded = load_app(args[1])
    assert isinstance(loaded, App)
    return loaded


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


# -- every file parses -------------------------------------------------------------------


def test_every_yaml_and_json_file_under_deploy_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    assert {p.name for p in files} >= {
        "deployment.yaml",
        "pdb.yaml",
        "service.yaml",
        "keda-scaledobject.yaml",
        "configmap.yaml",
        "secret.yaml",
        "alerts.yaml",
        "grafana-dashboard.json",
    }
    for path in files:
        text = path.read_text(encoding="utf-8")
        documents = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
        assert any(documents), f"{path} is empty"


def test_the_kustomization_lists_every_manifest(manifests: list[Manifest]) -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed["resources"]) == present
    kinds = {m["kind"] for m in manifests}
    assert kinds >= {
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ScaledObject",
        "TriggerAuthentication",
        "ConfigMap",
        "Secret",
    }
    for manifest in manifests:
        assert manifest["apiVersion"] and manifest["metadata"]["name"], manifest


# -- the Dockerfile ----------------------------------------------------------------------


def test_the_image_runs_a_real_command_as_one_worker_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [entrypoint] = instructions("ENTRYPOINT")
    [command] = instructions("CMD")
    args = [*json.loads(entrypoint), *json.loads(command)]
    assert args[0] == "millstream"
    result = CliRunner().invoke(cli, [*args[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert args[1] == "worker" and "--processes" not in args, "one process per container"
    monkeypatch.syspath_prepend(str(ROOT))
    assert isinstance(load_app(args[2]), App)


def test_the_image_is_slim_and_runs_as_a_numeric_non_root_user(
    manifests: list[Manifest],
) -> None:
    images = instructions("FROM")
    assert images and all(re.match(r"python:3\.\d+-slim\b", image) for image in images)
    [user] = instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    security = pod(manifests)["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == uid


def test_the_image_health_check_asks_the_health_path_on_the_metrics_port() -> None:
    [check] = instructions("HEALTHCHECK")
    assert HEALTH_PATH in check
    env = docker_env()
    assert env["MILLSTREAM_METRICS_HOST"] == "0.0.0.0"
    assert instructions("EXPOSE") == [env["MILLSTREAM_METRICS_PORT"]]
    [volume] = instructions("VOLUME")
    assert json.loads(volume) == [env["MILLSTREAM_LOCAL_DIR"]]


# -- settings ----------------------------------------------------------------------------


def test_every_setting_named_is_a_real_setting_and_valid(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {**docker_env(), **settings_env(manifests)}
    named = {key for key in env if key.startswith(ENV_PREFIX)}
    assert len(named) >= 5
    for key in settings_env(manifests):
        assert key.startswith(ENV_PREFIX), f"{key} is no millstream setting"
    for key in named:
        assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, f"{key}: no such setting"
    for key in list(Settings.model_fields):
        monkeypatch.delenv(ENV_PREFIX + key.upper(), raising=False)
    for key in named:
        value = env[key]
        if key.endswith(("_LOCATION", "_FILE")):
            # A file mounted in the pod (test_files_the_settings_name_are_mounted):
            # the settings check that it exists, so give them a stand-in here.
            value = str(tmp_path / PurePosixPath(value).name)
            Path(value).write_text("stand-in\n")
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.log_format == "json"
    assert settings.metrics_host == "0.0.0.0"


def test_files_the_settings_name_are_mounted(manifests: list[Manifest]) -> None:
    env = settings_env(manifests)
    spec = pod(manifests)["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(mounts) <= set(volumes)
    assert env["MILLSTREAM_LOCAL_DIR"] in mounts.values()
    ca = PurePosixPath(env["MILLSTREAM_SSL_CA_LOCATION"])
    [holder] = [name for name, path in mounts.items() if PurePosixPath(path) == ca.parent]
    secret_name = volumes[holder]["secret"]["secretName"]
    [secret] = [s for s in of_kind(manifests, "Secret") if s["metadata"]["name"] == secret_name]
    assert ca.name in secret["stringData"]


# -- the Deployment, its probes, budget, Service and scaler ------------------------------


def test_the_deployment_runs_the_image_this_repository_builds(manifests: list[Manifest]) -> None:
    images = [c["image"] for c in pod(manifests)["spec"]["containers"]]
    assert images == [f"millstream:{project_version()}"]
    args = container(manifests)["args"]
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "--processes" not in args, "one worker process per pod"


def test_probes_and_ports_match_the_metrics_server(manifests: list[Manifest]) -> None:
    worker = container(manifests)
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {"metrics": int(settings_env(manifests)["MILLSTREAM_METRICS_PORT"])}
    assert ports["metrics"] == int(docker_env()["MILLSTREAM_METRICS_PORT"])
    assert worker["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert worker["livenessProbe"]["httpGet"]["path"] == HEALTH_PATH
    for probe in ("readinessProbe", "livenessProbe"):
        assert worker[probe]["httpGet"]["port"] in ports
    service = one(manifests, "Service")
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in ports and port["port"] == ports["metrics"]
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]


def test_every_path_the_files_name_is_served_by_a_worker(
    manifests: list[Manifest], app: App
) -> None:
    worker = container(manifests)
    paths = {
        worker["readinessProbe"]["httpGet"]["path"],
        worker["livenessProbe"]["httpGet"]["path"],
        one(manifests, "Service")["metadata"]["annotations"]["prometheus.io/path"],
        *re.findall(r"/[a-z]+z\b", instructions("HEALTHCHECK")[0]),
    }
    assert len(paths) == 3
    telemetry = app.worker().telemetry
    server = HealthServer("127.0.0.1", 0, telemetry.registry, lambda: True, lambda: False)
    try:
        for path in paths:
            assert _status(server.port, path) in (200, 503), path
        assert _status(server.port, "/nothing-here") == 404
    finally:
        server.close()


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_grace_period_outlasts_the_drain(manifests: list[Manifest], app: App) -> None:
    grace = pod(manifests)["spec"]["terminationGracePeriodSeconds"]
    drain = app.worker_config.shutdown_timeout + app.worker_config.transaction_timeout
    assert grace > drain, f"terminationGracePeriodSeconds {grace} <= the drain's {drain} s"


def test_the_budget_and_the_service_select_the_workers(manifests: list[Manifest]) -> None:
    deployment = one(manifests, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    budget = one(manifests, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    assert one(manifests, "Service")["spec"]["selector"].items() <= labels.items()


def test_keda_scales_the_deployment_on_the_apps_group_and_topic(
    manifests: list[Manifest], app: App
) -> None:
    scaled = one(manifests, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == one(manifests, "Deployment")["metadata"]["name"]
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert set(meta) >= {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"}
    assert meta["bootstrapServers"] == settings_env(manifests)["MILLSTREAM_BOOTSTRAP_SERVERS"]
    assert meta["consumerGroup"] == app.app_id
    assert meta["topic"] in app.topology.sources
    assert int(meta["lagThreshold"]) > 0
    partitions = app.topology.topics[meta["topic"]].partitions
    assert partitions is not None
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    auth = one(manifests, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in of_kind(manifests, "Secret")}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]], ref


# -- metric names ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metric_names(app: App) -> set[str]:
    """Every series name a worker serves, from the collectors a real worker registers
    (with a task, so the task metrics are there too)."""
    with_tasks = App("names", settings=load_settings())
    with_tasks.stream(with_tasks.topic("in", partitions=1)).to(with_tasks.topic("out"))

    @with_tasks.task
    def noop() -> None:
        """A task, so the worker registers the task metrics."""

    names: set[str] = set()
    for source in (app, with_tasks):
        for family in source.worker().telemetry.registry.collect():
            names |= _series(family)
    return names


def _series(family: Metric) -> set[str]:
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }[family.type]
    return {family.name + suffix for suffix in suffixes}


def promql() -> dict[str, str]:
    """Every PromQL expression in deploy/prometheus, by where it is."""
    found = {}
    rules = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["definition"]
    return found


def test_every_metric_the_alerts_and_dashboard_use_is_served(metric_names: set[str]) -> None:
    assert {"millstream_records_in_total", "millstream_processing_seconds_bucket"} <= metric_names
    used = set()
    for where, expr in promql().items():
        names = set(re.findall(r"\bmillstream_[a-z0-9_]+", expr))
        assert names, f"{where} uses no millstream metric"
        unknown = names - metric_names
        assert not unknown, f"{where}: no such metric {sorted(unknown)}"
        used |= names
    assert len(used) >= 15


def test_the_alerts_cover_lag_dead_letters_and_readiness() -> None:
    alerts = {where: expr for where, expr in promql().items() if where.startswith("alert ")}
    exprs = " ".join(alerts.values())
    for metric in ("millstream_consumer_lag", "millstream_dead_letters_total", "millstream_ready"):
        assert metric in exprs
    rules = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] and rule["annotations"]["summary"], rule
