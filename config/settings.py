"""Typed settings, read from the environment (prefix ``MILLSTREAM_``) and validated once.

A bad value fails at startup with :class:`~millstream.errors.ConfigurationError`
naming the setting, e.g. ``MILLSTREAM_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from millstream.errors import ConfigurationError

ENV_PREFIX = "MILLSTREAM_"

#: Where ``millstream dev up`` puts its first broker; the default when nothing is set.
LOCAL_BOOTSTRAP = "127.0.0.1:19092"


class Settings(BaseSettings):
    """Connection and runtime settings shared by every millstream command.

    Each field can be set as an environment variable named ``MILLSTREAM_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    bootstrap_servers: str = Field(
        default=LOCAL_BOOTSTRAP,
        description="Comma-separated host:port list of Kafka brokers.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to wait for the cluster before a command reports it unreachable.",
    )
    local_dir: Path = Field(
        default=Path(".local"),
        description="Directory for the local cluster, state stores and caches.",
    )
    topic_replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replication factor for topics millstream creates; default min(3, brokers).",
    )
    auto_create_topics: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Worker log lines as text or one JSON object each (docs/operations.md).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        lt=65536,
        description="Serve /metrics, /healthz and /readyz on this port (+ the worker index).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics server binds (0.0.0.0 in containers)."
    )
    dev_port: int = Field(
        default=19092,
        ge=1024,
        le=65000,
        description=(
            "First port of the local dev cluster: node i listens on dev_port + 2*(i-1) "
            "(broker) and the port after it (controller)."
        ),
    )
    dev_kafka_version: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+\.\d+$",
        description="Kafka version of the local dev cluster; default the packaged pom's.",
    )
    dev_heap: str = Field(
        default="512m",
        pattern=r"^\d+[kmgKMG]$",
        description="JVM heap (-Xms and -Xmx) of each local dev cluster node, e.g. 512m.",
    )
    dev_start_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds `millstream dev up` waits for the cluster to serve requests.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("must name at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka connection properties derived from these settings."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, apply ``overrides``, and validate.

    Raises:
        ConfigurationError: naming the first invalid setting as its environment variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        raise ConfigurationError(ENV_PREFIX + field.upper(), error["msg"]) from exc
