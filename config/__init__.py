"""Typed settings and the packaged default files (Kafka broker templates)."""

from pathlib import Path

from millstream.config.settings import LOCAL_BOOTSTRAP, Settings, load_settings

#: Directory of the packaged Kafka files: the broker pom, server.properties template, log4j2.
KAFKA_FILES = Path(__file__).parent / "kafka"

__all__ = ["KAFKA_FILES", "LOCAL_BOOTSTRAP", "Settings", "load_settings"]
