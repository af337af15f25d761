"""Typed settings, read from the environment (prefix ``MILLSTREAM_``) and validated once.

A bad value fails at startup with :class:`~millstream.errors.ConfigurationError`
naming the setting, e.g. ``MILLSTREAM_BOOTSTRAP_SERVERS``. Secrets (the SASL password,
the private key's password, OAUTHBEARER properties) are ``SecretStr``: they show as
``**********`` in reprs, logs and errors (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from millstream.config.security import check_security, read_password_file, security_config
from millstream.errors import ConfigurationError

ENV_PREFIX = "MILLSTREAM_"

#: Fields whose values never appear in a repr, a log line or an error.
SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password", "sasl_oauthbearer_config"})

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
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password (instead of SASL_PASSWORD)."
    )
    sasl_oauthbearer_config: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="librdkafka sasl.oauthbearer.* properties, as JSON, passed through as is.",
    )
    ssl_ca_location: str | None = Field(
        default=None, description="PEM file of the CA(s) that sign the brokers' certificates."
    )
    ssl_certificate_location: str | None = Field(
        default=None, description="PEM file of the client's certificate (mutual TLS)."
    )
    ssl_key_location: str | None = Field(
        default=None, description="PEM file of the client's private key (mutual TLS)."
    )
    ssl_key_password: SecretStr | None = None
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

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        """Reads the password file and checks that the security settings fit together.

        Raises ConfigurationError (not a ValueError, so pydantic passes it on as is).
        """
        if self.sasl_password_file is not None:
            self.sasl_password = read_password_file(self.sasl_password_file, self.sasl_password)
        check_security(self)
        return self

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka connection properties derived from these settings (secrets revealed)."""
        return {"bootstrap.servers": self.bootstrap_servers, **security_config(self)}


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, apply ``overrides``, and validate.

    Raises:
        ConfigurationError: naming the first invalid setting as its environment variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except SettingsError as exc:
        # pydantic-settings could not parse a variable (bad JSON): its message names
        # the field, never the value.
        raise ConfigurationError(ENV_PREFIX + _field_named(str(exc)), "cannot be parsed") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        problem = ConfigurationError(ENV_PREFIX + field.upper(), error["msg"])
        if field in SECRET_FIELDS:
            # pydantic's error shows the input: a secret's must not reach a traceback.
            raise problem from None
        raise problem from exc


def _field_named(message: str) -> str:
    """The field a pydantic-settings parse error names (``... field "x" ...``)."""
    _, _, rest = message.partition('field "')
    return rest.partition('"')[0].upper() or "?"
