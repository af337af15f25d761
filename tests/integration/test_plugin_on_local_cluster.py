"""The pytest plugin's kafka_bootstrap in a pytest run of its own, on the real local cluster.

Without MILLSTREAM_BOOTSTRAP_SERVERS and without Docker the fixture takes the local
cluster of ``millstream dev``; the session cluster is that cluster when scripts/test
started it, and then the fixture must reuse it and leave it running. Starting a
cluster for the session and stopping it after is covered in
tests/unit/test_testing_pytest_plugin.py with a stand-in cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import ROOT, run_pytest

from millstream.config import load_settings
from millstream.dev import LocalCluster

pytestmark = pytest.mark.timeout(180)

INNER_CONFTEST = """
from millstream.testing import pytest_plugin

# As on a machine without Docker, whatever this one has.
pytest_plugin.docker_answers = lambda timeout=0.0: False
"""

INNER_TEST = """
from millstream.config import load_settings
from millstream.kafka import TopicAdmin


def test_kafka(kafka_bootstrap):
    assert kafka_bootstrap == {bootstrap!r}
    assert TopicAdmin(load_settings(bootstrap_servers=kafka_bootstrap)).broker_count() >= 1
"""


def test_a_running_local_cluster_is_reused_and_left_running(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    settings = load_settings()
    local_dir = (
        settings.local_dir if settings.local_dir.is_absolute() else ROOT / settings.local_dir
    )
    cluster = LocalCluster(settings.model_copy(update={"local_dir": local_dir}))
    if not cluster.status().running or cluster.bootstrap_servers != bootstrap_servers:
        pytest.skip("the cluster under test is not this repository's local cluster")
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TEST.format(bootstrap=bootstrap_servers))
    env = {k: v for k, v in os.environ.items() if k != "MILLSTREAM_BOOTSTRAP_SERVERS"}
    env["MILLSTREAM_LOCAL_DIR"] = str(local_dir)

    result = run_pytest(tmp_path, env, timeout=150)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert cluster.status().running
