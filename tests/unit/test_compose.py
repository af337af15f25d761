"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file names millstream commands, apps, ports and Kafka settings that
nothing else would check until someone runs ``docker compose up``: these tests
hold them to the code and to each other.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from millstream import App
from millstream.cli import cli
from millstream.loader import load_app

ROOT = Path(__file__).resolve().parents[2]
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
SERVICES = (*KAFKA_NODES, "topic-init", "postgres", "detectors", "generator", "dashboard")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def image_services(services: dict[str, dict[str, Any]]) -> list[str]:
    """The services that run the image of our Dockerfile."""
    return [name for name, s in services.items() if "build" in s]


def millstream_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The arguments of every service that runs the image's ``millstream`` entrypoint."""
    return {
        name: list(s["command"])
        for name, s in services.items()
        if "build" in s and "entrypoint" not in s
    }


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {name: (host, port)}."""
    result = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def test_the_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(SERVICES) <= set(services)


def test_kafka_runs_the_official_image_as_combined_nodes(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in KAFKA_NODES:
        assert services[name]["image"].startswith("apache/kafka:")
        assert env(services[name])["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node_ids = {env(services[name])["KAFKA_NODE_ID"] for name in KAFKA_NODES}
    assert len(node_ids) == len(KAFKA_NODES)
    cluster_ids = {env(services[name])["CLUSTER_ID"] for name in KAFKA_NODES}
    assert len(cluster_ids) == 1


def test_internal_topics_are_replicated_three_times_with_min_isr_two(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in KAFKA_NODES:
        settings = env(services[name])
        assert settings["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert settings["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert settings["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert settings["KAFKA_MIN_INSYNC_REPLICAS"] == "2"


def test_controller_quorum_voters_match_the_nodes(services: dict[str, dict[str, Any]]) -> None:
    expected = set()
    for name in KAFKA_NODES:
        settings = env(services[name])
        _, controller_port = listeners(settings["KAFKA_LISTENERS"])["CONTROLLER"]
        host = services[name].get("hostname", name)
        expected.add(f"{settings['KAFKA_NODE_ID']}@{host}:{controller_port}")
    for name in KAFKA_NODES:
        voters = env(services[name])["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert set(voters) == expected, name
        assert len(voters) == len(expected), name


def test_broker_host_ports_are_distinct_and_advertised(
    services: dict[str, dict[str, Any]],
) -> None:
    published: list[int] = []
    for name in KAFKA_NODES:
        settings = env(services[name])
        advertised = listeners(settings["KAFKA_ADVERTISED_LISTENERS"])
        host, port = advertised["HOST"]
        mappings = [str(p).split(":") for p in services[name]["ports"]]
        assert [host, str(port), str(port)] in mappings, name
        assert listeners(settings["KAFKA_LISTENERS"])["HOST"][1] == port
        published.extend(int(mapping[-2]) for mapping in mappings)
    assert len(published) == len(set(published)), published


def test_workers_bootstrap_from_the_internal_listeners(
    services: dict[str, dict[str, Any]],
) -> None:
    internal = {
        "{}:{}".format(*listeners(env(services[name])["KAFKA_ADVERTISED_LISTENERS"])["INTERNAL"])
        for name in KAFKA_NODES
    }
    for name in image_services(services):
        servers = env(services[name])["MILLSTREAM_BOOTSTRAP_SERVERS"].split(",")
        assert servers and set(servers) <= internal, name


def has_command(name: str) -> bool:
    return CliRunner().invoke(cli, [name, "--help"]).exit_code == 0


@pytest.mark.parametrize("service", ["detectors", "dashboard"])
def test_every_millstream_command_is_a_real_cli_command(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    args = millstream_services(services)[service]
    if args[0] == "dashboard" and not has_command("dashboard"):
        pytest.skip("this millstream has no dashboard command")
    # --help is eager: click still rejects unknown commands and options, then prints help.
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_every_app_the_services_run_imports_and_is_an_app(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    targets = {args[1] for args in millstream_services(services).values()}
    assert targets == {"examples.fraud.detectors:app"}
    for target in targets:
        assert isinstance(load_app(target), App), target


def test_the_generator_runs_the_publishing_module_with_valid_arguments(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    generator = services["generator"]
    assert generator["entrypoint"] == ["python", "-m", "examples.fraud.publishing"]
    from examples.fraud.publishing import parser

    args = parser().parse_args(generator["command"])
    assert args.rate > 0
    healthcheck = " ".join(generator["healthcheck"]["test"])
    assert str(args.alive_file) in healthcheck


def test_services_share_one_configuration_of_the_fraud_app(
    services: dict[str, dict[str, Any]],
) -> None:
    fraud = {
        name: {k: v for k, v in env(services[name]).items() if k.startswith("FRAUD_")}
        for name in image_services(services)
    }
    assert len({tuple(sorted(f.items())) for f in fraud.values()}) == 1, fraud
    settings = next(iter(fraud.values()))
    dsn = dict(item.split("=", 1) for item in settings["FRAUD_POSTGRES_DSN"].split())
    assert dsn["host"] == "postgres"
    assert dsn["password"] == env(services["postgres"])["POSTGRES_PASSWORD"]


def test_topic_init_creates_the_topics_the_services_use(
    services: dict[str, dict[str, Any]],
) -> None:
    script = " ".join(services["topic-init"]["command"])
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    assert "--replication-factor 3" in script
    settings = env(services["detectors"])
    for variable in ("FRAUD_TRANSACTIONS_TOPIC", "FRAUD_ALERTS_TOPIC", "FRAUD_BLOCKLIST_TOPIC"):
        assert re.search(rf"\b{re.escape(settings[variable])}\b", script), variable
    blocklist = settings["FRAUD_BLOCKLIST_TOPIC"]
    flat = " ".join(script.replace("\\\n", " ").split())
    assert re.search(rf"--topic {blocklist} --partitions 1 .*cleanup.policy=compact", flat)
    for name in image_services(services):
        if name == "generator":
            continue
        condition = services[name]["depends_on"]["topic-init"]["condition"]
        assert condition == "service_completed_successfully", name


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name == "topic-init":
            continue
        assert service.get("healthcheck", {}).get("test"), name
    detectors = services["detectors"]
    processes = int(detectors["command"][detectors["command"].index("--processes") + 1])
    first = int(env(detectors)["MILLSTREAM_METRICS_PORT"])
    checked = " ".join(detectors["healthcheck"]["test"])
    assert processes == 2
    assert f"({', '.join(str(first + i) for i in range(processes))})" in checked
    dashboard = services["dashboard"]
    port = dashboard["command"][dashboard["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}:{port}" in dashboard["ports"]
    assert f"127.0.0.1:{port}/" in " ".join(dashboard["healthcheck"]["test"])


def test_the_dockerfile_copies_what_exists_and_runs_millstream() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    # COPY --from=<stage> copies out of an earlier build stage, not the repository.
    copies = [
        shlex.split(line)[1:]
        for line in lines
        if line.startswith("COPY ") and not line.startswith("COPY --from=")
    ]
    assert copies
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    copied = {Path(s).name for args in copies for s in args[:-1]}
    assert {"millstream", "producers", "processors", "sinks", "config", "examples"} <= copied
    assert 'ENTRYPOINT ["millstream"]' in lines
