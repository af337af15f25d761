"""Security settings: validated at startup naming the setting, secrets never shown;
the cluster's refusals told apart from dropped connections; the secured dev cluster's
broker properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError as ClientError

from millstream.config import load_settings
from millstream.dev.properties import Topology, parse_properties, render_properties
from millstream.dev.security import ClusterSecurity, Credentials
from millstream.errors import AuthenticationError, ConfigurationError, LocalClusterError, TlsError
from millstream.kafka.clients import raise_refusal
from millstream.kafka.errors import refusal

SECRET = "s3cret-Pa55word"
SCRAM = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "app",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD",
        "SASL_PASSWORD_FILE", "SASL_OAUTHBEARER_CONFIG", "SSL_CA_LOCATION",
        "SSL_CERTIFICATE_LOCATION", "SSL_KEY_LOCATION", "SSL_KEY_PASSWORD",
    ):  # fmt: skip
        monkeypatch.delenv(f"MILLSTREAM_{name}", raising=False)


def problem(**settings: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**settings)
    return caught.value


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"security_protocol": "SASL_SSL"}, "MILLSTREAM_SASL_MECHANISM"),
        ({**SCRAM}, "MILLSTREAM_SASL_PASSWORD"),
        ({**SCRAM, "sasl_username": None, "sasl_password": SECRET}, "MILLSTREAM_SASL_USERNAME"),
        ({"sasl_mechanism": "PLAIN"}, "MILLSTREAM_SASL_MECHANISM"),
        ({"sasl_password": SECRET}, "MILLSTREAM_SASL_PASSWORD"),
        ({"sasl_password_file": __file__}, "MILLSTREAM_SASL_PASSWORD_FILE"),
        ({"ssl_ca_location": __file__}, "MILLSTREAM_SSL_CA_LOCATION"),
        (
            {"security_protocol": "SSL", "ssl_ca_location": "/no/ca.pem"},
            "MILLSTREAM_SSL_CA_LOCATION",
        ),
        (
            {"security_protocol": "SSL", "ssl_certificate_location": __file__},
            "MILLSTREAM_SSL_KEY_LOCATION",
        ),
        ({"security_protocol": "SSL", "ssl_key_password": SECRET}, "MILLSTREAM_SSL_KEY_PASSWORD"),
        ({"security_protocol": "TLS"}, "MILLSTREAM_SECURITY_PROTOCOL"),
        ({**SCRAM, "sasl_mechanism": "GSSAPI"}, "MILLSTREAM_SASL_MECHANISM"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauthbearer_config": {"client.secret": SECRET},
            },
            "MILLSTREAM_SASL_OAUTHBEARER_CONFIG",
        ),
    ],
)
def test_a_bad_combination_fails_naming_the_setting(
    settings: dict[str, object], named: str
) -> None:
    error = problem(**settings)
    assert error.setting == named
    assert named in str(error)
    assert SECRET not in str(error)


def test_scram_over_tls_reaches_the_client_config_and_never_a_repr() -> None:
    settings = load_settings(**SCRAM, sasl_password=SECRET, ssl_ca_location=__file__)
    assert settings.kafka_config() == {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "app",
        "sasl.password": SECRET,
        "ssl.ca.location": __file__,
    }
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in shown
        assert "sasl_username='app'" in repr(settings)


def test_the_password_comes_from_a_file_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    for key, value in SCRAM.items():
        monkeypatch.setenv(f"MILLSTREAM_{key.upper()}", value)
    monkeypatch.setenv("MILLSTREAM_SASL_PASSWORD_FILE", str(secret_file))
    settings = load_settings()
    assert settings.kafka_config()["sasl.password"] == SECRET
    assert SECRET not in repr(settings)

    monkeypatch.setenv("MILLSTREAM_SASL_PASSWORD", "another")
    assert problem().setting == "MILLSTREAM_SASL_PASSWORD_FILE"
    monkeypatch.delenv("MILLSTREAM_SASL_PASSWORD")
    secret_file.write_text("")
    assert "is empty" in str(problem())
    monkeypatch.setenv("MILLSTREAM_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    assert problem().setting == "MILLSTREAM_SASL_PASSWORD_FILE"


def test_oauthbearer_properties_pass_through_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": "millstream",
        "sasl.oauthbearer.client.secret": SECRET,
        "sasl.oauthbearer.token.endpoint.url": "https://127.0.0.1/token",
    }
    monkeypatch.setenv("MILLSTREAM_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MILLSTREAM_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("MILLSTREAM_SASL_OAUTHBEARER_CONFIG", __import__("json").dumps(config))
    settings = load_settings()
    assert {k: v for k, v in settings.kafka_config().items() if k in config} == config
    assert settings.kafka_config()["sasl.mechanism"] == "OAUTHBEARER"
    assert SECRET not in repr(settings)

    monkeypatch.setenv("MILLSTREAM_SASL_OAUTHBEARER_CONFIG", '{"sasl.oauthbearer.client.secret": ')
    error = problem()
    assert error.setting == "MILLSTREAM_SASL_OAUTHBEARER_CONFIG"
    monkeypatch.setenv(
        "MILLSTREAM_SASL_OAUTHBEARER_CONFIG", '{"sasl.oauthbearer.client.secret": 7}'
    )
    error = problem()
    assert error.setting == "MILLSTREAM_SASL_OAUTHBEARER_CONFIG"
    # pydantic's own error shows the input: it is not chained where a secret is concerned.
    assert error.__cause__ is None


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (
            ClientError._AUTHENTICATION,
            "SASL authentication error: Authentication failed during authentication due to "
            "invalid credentials with SASL mechanism SCRAM-SHA-512",
            AuthenticationError,
        ),
        (
            ClientError._SSL,
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
            TlsError,
        ),
        (
            ClientError._AUTHENTICATION,
            "GroupCoordinator: SASL SCRAM-SHA-512 mechanism handshake failed: Local: Broker "
            "transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)",
            None,
        ),
        (ClientError._SSL, "SSL handshake failed: Disconnected: connection closed by peer", None),
        (ClientError._TRANSPORT, "Connection refused", None),
        (ClientError._ALL_BROKERS_DOWN, "1/1 brokers are down", None),
    ],
)
def test_a_refusal_is_told_apart_from_a_dropped_connection(
    code: int, text: str, expected: type[Exception] | None
) -> None:
    error = ClientError(code, text)
    mapped = refusal(error)
    if expected is None:
        assert mapped is None
        raise_refusal(error)  # logged, not raised
        return
    assert type(mapped) is expected
    words = "SASL authentication failed" if expected is AuthenticationError else "certificate"
    assert words in str(mapped) and text in str(mapped)
    with pytest.raises(expected):
        raise_refusal(error)


CREDENTIALS = Credentials("/ca.pem", "admin", "pw-admin", "shop", "shop", "pw-shop")


def test_a_secured_node_listens_with_sasl_ssl_and_keeps_the_controller_plaintext() -> None:
    topology = Topology(1, 39400)
    text = render_properties(topology, 1, Path("/data")) + ClusterSecurity(
        Path("/k")
    ).broker_properties(CREDENTIALS, "127.0.0.1", 39400, 39401)
    # Later lines win in a Java properties file, as in parse_properties.
    properties = parse_properties(text)
    assert properties["listeners"] == "SASL_SSL://127.0.0.1:39400,CONTROLLER://127.0.0.1:39401"
    assert properties["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert properties["inter.broker.listener.name"] == "SASL_SSL"
    assert properties["ssl.keystore.type"] == "PEM"
    assert properties["ssl.truststore.location"] == "/ca.pem"
    assert properties["super.users"] == "User:admin;User:ANONYMOUS"
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert 'username="admin" password="pw-admin"' in text
    assert ClusterSecurity.format_arguments(CREDENTIALS) == [
        "--add-scram", "SCRAM-SHA-512=[name=admin,password=pw-admin]",
        "--add-scram", "SCRAM-SHA-512=[name=shop,password=pw-shop]",
    ]  # fmt: skip


def test_security_is_fixed_when_the_storage_is_formatted(tmp_path: Path) -> None:
    security = ClusterSecurity(tmp_path)
    assert security.planned(None, None, formatted=False) == "plaintext"
    assert security.planned(None, "sasl_ssl", formatted=False) == "sasl_ssl"
    assert security.planned("sasl_ssl", None, formatted=True) == "sasl_ssl"
    with pytest.raises(LocalClusterError, match="dev down --wipe"):
        security.planned("plaintext", "sasl_ssl", formatted=True)
    with pytest.raises(LocalClusterError, match="--security must be one of"):
        security.planned(None, "kerberos", formatted=False)
