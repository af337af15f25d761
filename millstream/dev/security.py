"""A secured local cluster (``millstream dev up --security sasl_ssl``).

Clients connect with SASL_SSL and SCRAM-SHA-512 on the broker port; the broker's
certificate is signed by a CA generated for the cluster (with the ``openssl``
command). Brokers talk to each other on that listener too, as the super user; the
KRaft controller listener stays PLAINTEXT on 127.0.0.1, and its principal
(``User:ANONYMOUS``) is a super user because the broker registers with the
controller through it. SCRAM users are written into the metadata log when the
storage is formatted (KRaft has no other way to create the first one), and the app
user's ACLs are created once the cluster serves. Files, all readable by the owner only::

    <local_dir>/kafka/security/
    ├── ca.pem, ca.key        the cluster's CA (clients trust ca.pem)
    ├── broker.pem            the broker's private key and certificate chain (PEM keystore)
    ├── credentials.json      users, passwords and the CA path (what ``dev up`` printed)
    └── app.env               MILLSTREAM_* variables that connect as the app user
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr

from millstream.config import Settings
from millstream.errors import LocalClusterError
from millstream.kafka.acls import app_acls, grant

#: The values of ``millstream dev up --security``.
SECURITY_MODES = ("plaintext", "sasl_ssl")
MECHANISM = "SCRAM-SHA-512"
SUPER_USER = "admin"
#: The app id (and user name) of the app user when ``--app-id`` is not given.
DEFAULT_APP_ID = "app"
_DAYS = "825"
_OPENSSL_TIMEOUT = 60


@dataclass(frozen=True)
class Credentials:
    """The users of a secured local cluster and the CA clients must trust.

    The app user may use only topics, consumer groups and transactional ids whose
    names start with ``app_id`` (the prefix every name an app makes starts with).
    """

    ca_location: str
    super_user: str
    super_password: str
    app_id: str
    app_user: str
    app_password: str

    def environment(self, bootstrap_servers: str, *, super_user: bool = False) -> dict[str, str]:
        """``MILLSTREAM_*`` variables that connect to the cluster as the app user (or
        the super user)."""
        user, password = self._login(super_user)
        return {
            "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers,
            "MILLSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "MILLSTREAM_SASL_MECHANISM": MECHANISM,
            "MILLSTREAM_SASL_USERNAME": user,
            "MILLSTREAM_SASL_PASSWORD": password,
            "MILLSTREAM_SSL_CA_LOCATION": self.ca_location,
        }

    def client_settings(
        self, settings: Settings, bootstrap_servers: str, *, super_user: bool = False
    ) -> Settings:
        """``settings`` with the connection replaced by this cluster's, as the app user
        (or the super user)."""
        user, password = self._login(super_user)
        return settings.model_copy(
            update={
                "bootstrap_servers": bootstrap_servers,
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": MECHANISM,
                "sasl_username": user,
                "sasl_password": SecretStr(password),
                "sasl_password_file": None,
                "sasl_oauthbearer_config": {},
                "ssl_ca_location": self.ca_location,
                "ssl_certificate_location": None,
                "ssl_key_location": None,
                "ssl_key_password": None,
            }
        )

    def _login(self, super_user: bool) -> tuple[str, str]:
        if super_user:
            return self.super_user, self.super_password
        return self.app_user, self.app_password


class ClusterSecurity:
    """The security files of the cluster rooted at ``root`` (``<local_dir>/kafka``)."""

    def __init__(self, root: Path) -> None:
        self.directory = root / "security"

    @property
    def credentials_file(self) -> Path:
        return self.directory / "credentials.json"

    @property
    def env_file(self) -> Path:
        return self.directory / "app.env"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.pem"

    def read(self) -> Credentials | None:
        """The recorded credentials, or None when the cluster was never secured."""
        try:
            return Credentials(**json.loads(self.credentials_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise LocalClusterError(
                f"{self.credentials_file} is unreadable ({exc}); run "
                "`millstream dev down --wipe` to start afresh"
            ) from exc

    def ensure(self, app_id: str | None) -> Credentials:
        """The cluster's credentials, generating the CA, the broker certificate and the
        passwords the first time. ``app_id`` None keeps the recorded one.

        Raises:
            LocalClusterError: ``openssl`` is missing or failed, or the cluster was
                secured for another app id (its users are in the formatted storage).
        """
        existing = self.read()
        if existing is not None:
            if app_id is not None and app_id != existing.app_id:
                raise LocalClusterError(
                    f"the local cluster's app user is {existing.app_id!r}, not {app_id!r}; "
                    "run `millstream dev down --wipe` first to change it"
                )
            return existing
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        ca = generate_ca(self.directory, "millstream local cluster CA")
        issue_certificate(self.directory, self.keystore)
        app = app_id or DEFAULT_APP_ID
        credentials = Credentials(str(ca), SUPER_USER, _password(), app, app, _password())
        _write_private(self.credentials_file, json.dumps(asdict(credentials), indent=2) + "\n")
        return credentials

    def planned(self, recorded: str | None, asked: str | None, formatted: bool) -> str:
        """The security a cluster runs with: as ``asked``, else as ``recorded`` when it
        was brought up before (plaintext for a new one).

        Raises:
            LocalClusterError: an unknown mode, or another mode than the one the
                cluster's storage was formatted with (its users live there).
        """
        mode = asked or recorded or "plaintext"
        if mode not in SECURITY_MODES:
            raise LocalClusterError(f"--security must be one of {', '.join(SECURITY_MODES)}")
        if formatted and mode != (recorded or "plaintext"):
            raise LocalClusterError(
                f"{self.directory.parent} holds a cluster formatted with security {recorded}; "
                f"run `millstream dev down --wipe` first to start one with {mode}"
            )
        return mode

    def secure(self, admin: Settings, bootstrap_servers: str) -> None:
        """Grant the app user its ACLs (connected as ``admin``, the super user) and write
        its connection to ``app.env``, one ``NAME=value`` a line."""
        credentials = self.read()
        assert credentials is not None, "ensure() made the credentials when the nodes started"
        grant(admin, app_acls(credentials.app_user, credentials.app_id))
        lines = credentials.environment(bootstrap_servers).items()
        _write_private(self.env_file, "".join(f"{k}={v}\n" for k, v in lines))

    def broker_properties(
        self, credentials: Credentials, host: str, broker_port: int, controller_port: int
    ) -> str:
        """The ``server.properties`` lines that secure a node (appended to the template's)."""
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{credentials.super_user}" password="{credentials.super_password}";'
        )
        return "\n".join(
            [
                "",
                "############################# Security (dev up --security sasl_ssl) "
                "#############################",
                "# These override the listener lines above: clients and brokers use SASL_SSL.",
                f"listeners=SASL_SSL://{host}:{broker_port},CONTROLLER://{host}:{controller_port}",
                f"advertised.listeners=SASL_SSL://{host}:{broker_port}",
                "inter.broker.listener.name=SASL_SSL",
                "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
                f"sasl.enabled.mechanisms={MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={login}",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.keystore}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={credentials.ca_location}",
                "ssl.client.auth=none",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found=false",
                f"super.users=User:{credentials.super_user};User:ANONYMOUS",
                "",
            ]
        )

    @staticmethod
    def format_arguments(credentials: Credentials) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        users = (
            (credentials.super_user, credentials.super_password),
            (credentials.app_user, credentials.app_password),
        )
        return [
            arg
            for user, password in users
            for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={password}]")
        ]


def generate_ca(directory: Path, name: str) -> Path:
    """A self-signed CA in ``directory`` (``ca.pem``, ``ca.key``); returns the certificate.

    Raises:
        LocalClusterError: ``openssl`` is missing or failed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS,
        "-keyout", str(key), "-out", str(certificate), "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    os.chmod(key, 0o600)
    return certificate


def issue_certificate(ca_directory: Path, keystore: Path) -> None:
    """A broker certificate for 127.0.0.1 and localhost signed by the CA in
    ``ca_directory``, written with its key and the CA to ``keystore`` (a PEM keystore).

    Raises:
        LocalClusterError: ``openssl`` is missing or failed.
    """
    work = ca_directory / "issuing"
    work.mkdir(exist_ok=True)
    key, request, certificate = work / "broker.key", work / "broker.csr", work / "broker.crt"
    extensions = work / "extensions.cnf"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
        encoding="utf-8",
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request),
        "-subj", "/CN=localhost",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_directory / "ca.pem"),
        "-CAkey", str(ca_directory / "ca.key"), "-CAcreateserial", "-days", _DAYS,
        "-extfile", str(extensions), "-out", str(certificate),
    )  # fmt: skip
    parts = (key, certificate, ca_directory / "ca.pem")
    _write_private(keystore, "".join(p.read_text(encoding="utf-8") for p in parts))
    shutil.rmtree(work)


def _openssl(*arguments: str) -> None:
    command = shutil.which("openssl")
    if command is None:
        raise LocalClusterError(
            "`millstream dev up --security sasl_ssl` needs the openssl command "
            "(apt-get install openssl) to generate the cluster's certificates"
        )
    result = subprocess.run(
        [command, *arguments],
        capture_output=True,
        text=True,
        timeout=_OPENSSL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise LocalClusterError(
            f"openssl {arguments[0]} failed (exit {result.returncode}): {result.stderr.strip()}"
        )


def _password() -> str:
    # URL-safe characters only: the password goes into a JAAS line and a
    # kafka-storage argument, where quotes, commas and brackets would break it.
    return secrets.token_urlsafe(18)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the owner only from the start."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
