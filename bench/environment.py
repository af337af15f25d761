"""What the results depend on: the machine, the broker and every contender's versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.peers import (
    DISTRIBUTIONS,
    PeerUnavailable,
    commit_of,
    interpreter,
    kafka_client,
    version,
)

_KAFKA_JAR = re.compile(r"kafka(?:-server|_2\.\d+)-(\d+\.\d+\.\d+)\.jar$")


@dataclass
class Environment:
    date: str
    machine: str
    python: str
    broker: str
    contenders: dict[str, str] = field(default_factory=dict)


def describe(
    root: Path,
    bootstrap: str,
    families: tuple[str, ...],
    millstream_ref: str | None,
    when: datetime | None = None,
) -> Environment:
    """The machine, Python, the broker's Kafka version and each family's versions, for a
    run that started ``when`` (default: now)."""
    env = Environment(
        date=(when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        machine=_machine(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        broker=f"Apache Kafka {broker_version(bootstrap)} (1 node, KRaft) at {bootstrap}",
    )
    for family in families:
        try:
            python = interpreter(family, root, millstream_ref)
        except PeerUnavailable:
            env.contenders[family] = "not installed"
            continue
        own = version(python, DISTRIBUTIONS[family])
        client = kafka_client(python, family)
        py = version_of_python(python)
        source = f"; {_millstream_source(root, millstream_ref)}" if family == "millstream" else ""
        if family == "plain":
            env.contenders[family] = f"{client} (Python {py})"
        else:
            env.contenders[family] = (
                f"{DISTRIBUTIONS[family]} {own} ({client}; Python {py}{source})"
            )
    return env


def _millstream_source(root: Path, ref: str | None) -> str:
    if ref:
        return f"commit {commit_of(root, ref)[:12]}"
    head = _git(root, "rev-parse", "--short=12", "HEAD")
    dirty = _git(
        root,
        "status",
        "--porcelain",
        "--",
        "millstream",
        "processors",
        "producers",
        "sinks",
        "config",
    )
    return f"working tree at {head}" + (" with uncommitted changes" if dirty else "")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def version_of_python(python: Path) -> str:
    if Path(sys.executable) == python:
        return platform.python_version()
    code = "import platform; print(platform.python_version())"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def _machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
    return f"{os.cpu_count()} CPUs ({cpu}), {kib / 1024 / 1024:.0f} GiB memory, {platform.system()}"


def broker_version(bootstrap: str) -> str:
    """The Kafka version of the local broker listening on ``bootstrap``'s port, read from
    the jars on its JVM's class path; "unknown" when it cannot be told (a remote broker)."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[-1]
    versions: set[str] = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        if not any(a.endswith(b"kafka.Kafka") for a in args):
            continue
        text = [a.decode(errors="replace") for a in args]
        if not _listens_on(cmdline.parent, text, port):
            continue
        for classpath in _classpaths(text):
            for entry in classpath.split(":"):
                jars = Path(entry[:-1]).glob("*.jar") if entry.endswith("*") else [Path(entry)]
                versions.update(m.group(1) for j in jars if (m := _KAFKA_JAR.match(j.name)))
    return versions.pop() if len(versions) == 1 else "unknown"


def _classpaths(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-cp", "-classpath")]


def _listens_on(proc_dir: Path, args: list[str], port: str) -> bool:
    """Whether the broker's properties file (its last argument) names ``port``."""
    try:
        properties = (
            Path(args[-1])
            if Path(args[-1]).is_absolute()
            else ((proc_dir / "cwd").resolve() / args[-1])
        )
        return f":{port}" in properties.read_text()
    except (OSError, IndexError):
        return False
