"""The connection's security settings: how they must fit together, and what librdkafka gets.

Checked once, when the settings are read, so that a client never starts with a
combination the cluster would refuse later (a SASL mechanism without a password, a
CA file that is not there). Every problem is a
:class:`~millstream.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from millstream.errors import ConfigurationError

if TYPE_CHECKING:
    from millstream.config.settings import Settings

_PREFIX = "MILLSTREAM_"
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")
#: Mechanisms that log in with a user name and password.
_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_OAUTHBEARER_PREFIX = "sasl.oauthbearer."


def _setting(field: str) -> str:
    return _PREFIX + field.upper()


def read_password_file(path: Path, password: SecretStr | None) -> SecretStr:
    """The password in ``path`` (one trailing newline dropped).

    Raises:
        ConfigurationError: the file cannot be read or is empty, or a password was
            given as well (which one would win is not obvious).
    """
    setting = _setting("sasl_password_file")
    if password is not None:
        raise ConfigurationError(setting, "set either it or MILLSTREAM_SASL_PASSWORD, not both")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(setting, f"cannot read {path}: {exc.__class__.__name__}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigurationError(setting, f"{path} is empty")
    return SecretStr(text)


def check_security(settings: Settings) -> None:
    """Check that the security settings fit the protocol and each other.

    Raises:
        ConfigurationError: naming the first setting that is missing, superfluous or
            points at a file that does not exist.
    """
    protocol = settings.security_protocol
    if protocol in _SASL:
        _check_sasl(settings)
    else:
        fields = ("sasl_mechanism", "sasl_username", "sasl_password_file", "sasl_password")
        for field in fields:
            if getattr(settings, field) is not None:
                raise ConfigurationError(
                    _setting(field), f"needs a SASL security protocol, not {protocol}"
                )
    tls_files = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
    for field in tls_files:
        value = getattr(settings, field)
        if value is None:
            continue
        if protocol not in _TLS:
            raise ConfigurationError(_setting(field), f"needs SSL or SASL_SSL, not {protocol}")
        if not Path(value).is_file():
            raise ConfigurationError(_setting(field), f"{value} is not a file")
    cert, key = settings.ssl_certificate_location, settings.ssl_key_location
    if (cert is None) != (key is None):
        missing = "ssl_key_location" if key is None else "ssl_certificate_location"
        raise ConfigurationError(
            _setting(missing), "a client certificate and its key go together (mutual TLS)"
        )
    if settings.ssl_key_password is not None and key is None:
        raise ConfigurationError(
            _setting("ssl_key_password"), "set without MILLSTREAM_SSL_KEY_LOCATION"
        )


def _check_sasl(settings: Settings) -> None:
    mechanism = settings.sasl_mechanism
    if mechanism is None:
        raise ConfigurationError(
            _setting("sasl_mechanism"),
            f"required with {settings.security_protocol}: one of PLAIN, SCRAM-SHA-256, "
            "SCRAM-SHA-512, OAUTHBEARER",
        )
    if mechanism in _PASSWORD_MECHANISMS:
        if not settings.sasl_username:
            raise ConfigurationError(_setting("sasl_username"), f"required with {mechanism}")
        if settings.sasl_password is None:
            raise ConfigurationError(
                _setting("sasl_password"),
                f"required with {mechanism} (or MILLSTREAM_SASL_PASSWORD_FILE)",
            )
        if settings.sasl_oauthbearer_config:
            raise ConfigurationError(
                _setting("sasl_oauthbearer_config"), f"only for OAUTHBEARER, not {mechanism}"
            )
        return
    wrong = [k for k in settings.sasl_oauthbearer_config if not k.startswith(_OAUTHBEARER_PREFIX)]
    if wrong:
        raise ConfigurationError(
            _setting("sasl_oauthbearer_config"),
            f"{wrong[0]!r} is not a {_OAUTHBEARER_PREFIX}* property",
        )


def security_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka properties of the security settings, secrets revealed (for the
    client's config only: never log the result)."""
    config: dict[str, Any] = {"security.protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        config["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    for key, value in settings.sasl_oauthbearer_config.items():
        config[key] = value.get_secret_value()
    files = {
        "ssl.ca.location": settings.ssl_ca_location,
        "ssl.certificate.location": settings.ssl_certificate_location,
        "ssl.key.location": settings.ssl_key_location,
    }
    config.update({key: value for key, value in files.items() if value})
    if settings.ssl_key_password is not None:
        config["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return config
