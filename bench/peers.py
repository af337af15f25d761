"""The peers' virtualenvs under ``.local/bench/<peer>/``, installed with pip on first use.

millstream and the plain loop run in millstream's own virtualenv (the interpreter
running the harness); Quix Streams, faust and Celery each get their own, so their pinned
dependencies (an older confluent-kafka, aiokafka, kombu) never meet millstream's.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Peer:
    family: str
    requirements: tuple[str, ...]
    distribution: str


PEERS = {
    # The extras: psycopg2 and pyarrow for its PostgreSQL and Parquet sinks (scenario sinks).
    "quix": Peer("quix", ("quixstreams[postgresql,parquet]==3.28.1",), "quixstreams"),
    # lz4: the input topics are lz4-compressed, and aiokafka needs the codec separately.
    "faust": Peer(
        "faust", ("faust-streaming==0.15.3", "aiokafka[lz4]", "orjson"), "faust-streaming"
    ),
    # The task-queue peer (scenario tasks), with Redis as its broker and result backend.
    "celery": Peer("celery", ("celery[redis]==5.6.3", "redis"), "celery"),
}
#: What each family reports as its version (distribution names).
DISTRIBUTIONS = {
    "plain": "confluent-kafka",
    "millstream": "millstream",
    "quix": "quixstreams",
    "faust": "faust-streaming",
    "celery": "celery",
}


class PeerUnavailable(Exception):
    """A peer's virtualenv could not be created or installed."""


def interpreter(family: str, root: Path, millstream_ref: str | None = None) -> Path:
    """The Python that runs ``family``'s contenders, installing its virtualenv if needed.

    millstream runs from the working tree (this interpreter's editable install), or with
    ``millstream_ref`` from that git commit, installed into ``.local/bench/millstream-<sha>``
    (immune to uncommitted edits of the tree).

    Raises:
        PeerUnavailable: with the tail of pip's output.
    """
    if family == "millstream" and millstream_ref:
        return _millstream_at(root, millstream_ref)
    peer = PEERS.get(family)
    if peer is None:
        return Path(sys.executable)
    return _install(root / ".local" / "bench" / family, peer.requirements)


def commit_of(root: Path, ref: str) -> str:
    """The full sha of ``ref``.

    Raises:
        PeerUnavailable: ``ref`` is not a commit of the repository.
    """
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PeerUnavailable(f"{ref!r} is not a commit: {done.stderr.strip()}")
    return done.stdout.strip()


def _millstream_at(root: Path, ref: str) -> Path:
    sha = commit_of(root, ref)
    venv = root / ".local" / "bench" / f"millstream-{sha[:12]}"
    source = venv / "src"
    if not (source / "pyproject.toml").exists():
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            f"git -C '{root}' archive {sha} | tar -x -C '{source}'", shell=True, check=False
        )
        if archive.returncode != 0:
            raise PeerUnavailable(f"git archive {sha} failed")
    # The sinks' extras: the sinks scenario runs PostgresSink and FileSink's Parquet.
    return _install(venv, (f"{source}[postgres,parquet]",))


def _install(venv: Path, requirements: tuple[str, ...]) -> Path:
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {' '.join(requirements)} into {venv} ...", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PeerUnavailable(f"{' '.join(step[:4])} failed: {' | '.join(tail)}")
    stamp.write_text(wanted)
    return python


def version(python: Path, distribution: str) -> str:
    """The installed version of ``distribution`` in ``python``'s environment, or "?"."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def kafka_client(python: Path, family: str) -> str:
    """The Kafka client under ``family``: librdkafka's version, or aiokafka's for faust; for
    Celery, which has no Kafka, its messaging library and Redis client."""
    if family == "faust":
        return f"aiokafka {version(python, 'aiokafka')}"
    if family == "celery":
        return f"kombu {version(python, 'kombu')}, redis-py {version(python, 'redis')}"
    code = "import confluent_kafka as c; print(c.libversion()[0])"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    parts = [version(python, "confluent-kafka"), done.stdout.strip()]
    return f"confluent-kafka {parts[0]}, librdkafka {parts[1] or '?'}"
