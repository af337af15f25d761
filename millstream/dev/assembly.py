"""Preflight checks (Java, Maven) and the broker's jars, assembled from Maven Central.

The Kafka version is set in one place, the ``kafka.version`` property of the packaged
``pom.xml`` (``millstream.config``, ``kafka/``); ``MILLSTREAM_DEV_KAFKA_VERSION``
overrides it. Jars are cached per version, so a second ``dev up`` needs neither Maven
nor the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from millstream.config import KAFKA_FILES
from millstream.dev.process import tail_text
from millstream.errors import LocalClusterError

POM = KAFKA_FILES / "pom.xml"
#: Kafka 4.x brokers need Java 17 or newer.
MIN_JAVA = 17
#: Seconds Maven may take to resolve and copy the jars (a cold ~/.m2 downloads ~60 MB).
MAVEN_TIMEOUT = 900.0
_COMPLETE = ".complete"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')

Progress = Callable[[str], None]


def find_java() -> str:
    """Path of the ``java`` to run: ``$JAVA_HOME/bin/java`` when set, else the one on PATH.

    Raises:
        LocalClusterError: no ``java`` executable was found.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    found = shutil.which("java")
    if found is None:
        raise LocalClusterError(
            f"`java` not found on PATH: the local Kafka cluster needs Java {MIN_JAVA} or newer "
            "(e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME)"
        )
    return found


def parse_java_version(text: str) -> int:
    """Major version from ``java -version`` output: ``"1.8.0_392"`` -> 8, ``"17.0.15"`` -> 17.

    Raises:
        LocalClusterError: the text names no version.
    """
    match = _JAVA_VERSION.search(text)
    if match is None:
        raise LocalClusterError(f"cannot read the Java version from `java -version`: {text!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def check_java() -> str:
    """Path of a usable ``java`` (version >= 17).

    Raises:
        LocalClusterError: no ``java``, it does not run, or it is older than Java 17.
    """
    java = find_java()
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalClusterError(f"cannot run {java} -version: {exc}") from exc
    major = parse_java_version(result.stderr + result.stdout)
    if major < MIN_JAVA:
        raise LocalClusterError(
            f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA} or newer "
            "(install a newer JDK and put it first on PATH or set JAVA_HOME)"
        )
    return java


def packaged_kafka_version(pom: Path = POM) -> str:
    """The ``kafka.version`` property of the broker pom.

    Raises:
        LocalClusterError: the pom is missing or has no ``kafka.version``.
    """
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise LocalClusterError(f"cannot read the broker pom {pom}: {exc}") from exc
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = root.findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise LocalClusterError(f"{pom} sets no <kafka.version> property")
    return version.strip()


class BrokerJars:
    """The class path of one Kafka version, cached in ``<cache_dir>/<version>``.

    A version directory is complete once assembly succeeded (it is built aside and
    renamed into place), so an interrupted download is never mistaken for a broker.
    """

    def __init__(self, cache_dir: Path, version: str) -> None:
        self.cache_dir = cache_dir
        self.version = version

    @property
    def directory(self) -> Path:
        """The directory holding the jars of this version."""
        return self.cache_dir / self.version

    @property
    def class_path(self) -> str:
        """The ``-cp`` argument: every jar of the version directory."""
        return str(self.directory / "*")

    def is_complete(self) -> bool:
        """Whether the jars of this version were assembled already."""
        return (self.directory / _COMPLETE).is_file()

    def ensure(self, progress: Progress | None = None) -> Path:
        """The jar directory, assembled with Maven unless cached. Blocks while Maven runs.

        Raises:
            LocalClusterError: ``mvn`` is missing, or it failed (the message ends with
                the tail of its output, e.g. when Maven Central is unreachable).
        """
        if self.is_complete():
            return self.directory
        if progress:
            progress(f"assembling Kafka {self.version} from Maven Central (once per version)")
        staging = self.cache_dir / f".{self.version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self._copy_dependencies(staging)
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise LocalClusterError(f"Maven copied no kafka_2.13 jar into {staging}")
        (staging / _COMPLETE).write_text(self.version + "\n", encoding="utf-8")
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)
        return self.directory

    def _copy_dependencies(self, output: Path) -> None:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalClusterError(
                "`mvn` not found on PATH: Maven assembles the Kafka broker from Maven Central "
                "the first time (e.g. `apt-get install maven`)"
            )
        work = self.cache_dir / ".build"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(POM, work / "pom.xml")
        command = [
            mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(work / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={output}",
            "-DincludeScope=runtime", f"-Dkafka.version={self.version}",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalClusterError(f"Maven did not finish assembling Kafka: {exc}") from exc
        if result.returncode != 0:
            tail = tail_text(_maven_errors(result.stdout + result.stderr), 12)
            raise LocalClusterError(
                f"Maven could not assemble Kafka {self.version} (exit {result.returncode}); "
                f"is Maven Central reachable and the version published? Maven said:\n{tail}"
            )


def _maven_errors(output: str) -> str:
    """Maven's output without colour codes and without its generic advice after the error."""
    lines = []
    for line in _ANSI.sub("", output).splitlines():
        lines.append(line)
        if line.rstrip().endswith("-> [Help 1]"):
            break
    return "\n".join(lines)
