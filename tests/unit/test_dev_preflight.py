"""Preflight checks of the local cluster that need neither Java nor a broker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from millstream.config import KAFKA_FILES
from millstream.dev.assembly import find_java, packaged_kafka_version, parse_java_version
from millstream.dev.process import port_in_use, tail_text
from millstream.errors import LocalClusterError


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss4m\nopenjdk version "25.0.1" 2025-10-21', 25),
    ],
)
def test_java_major_version_is_parsed(output: str, major: int) -> None:
    assert parse_java_version(output) == major


def test_unreadable_java_version_is_an_error() -> None:
    with pytest.raises(LocalClusterError, match="Java version"):
        parse_java_version("command not found")


def test_missing_java_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LocalClusterError, match=r"`java` not found on PATH.*Java 17"):
        find_java()


def test_kafka_version_is_set_once_in_the_packaged_pom() -> None:
    version = packaged_kafka_version()

    assert version.split(".")[0] == "4"
    pom = (KAFKA_FILES / "pom.xml").read_text(encoding="utf-8")
    assert pom.count(version) == 1


def test_packaged_files_exist() -> None:
    for name in ("pom.xml", "server.properties.template", "log4j2.yaml"):
        assert (KAFKA_FILES / name).is_file(), name


def test_a_listening_port_is_in_use() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_tail_keeps_the_last_non_blank_lines() -> None:
    assert tail_text("a\n\nb\nc\n\n", 2, indent="> ") == "> b\n> c"
