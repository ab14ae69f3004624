"""The web server's own settings, from the environment (docs/web.md lists them)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass

from worker.settings import SettingsError, home

HOST_ENV_VAR = "DEALFLOW_WEB_HOST"
PORT_ENV_VAR = "DEALFLOW_WEB_PORT"
SECRET_ENV_VAR = "DEALFLOW_SECRET_KEY"
# opt-in single sign-on: the header a trusted proxy sets to the signed-in user's name, and the
# proxy's address(es): the header is believed only on requests from there
SSO_HEADER_ENV_VAR = "DEALFLOW_SSO_HEADER"
SSO_PROXY_ENV_VAR = "DEALFLOW_SSO_PROXY"
# cookies marked Secure: set when the server is reached over HTTPS (behind a proxy that ends TLS)
SECURE_COOKIES_ENV_VAR = "DEALFLOW_SECURE_COOKIES"
# Host names the server answers to beyond the loopback ones (comma-separated); with access control
# off only loopback names and the bound address are answered, whatever this says
ALLOWED_HOSTS_ENV_VAR = "DEALFLOW_ALLOWED_HOSTS"
# the largest request body in bytes, and the larger one of the upload routes (definitions, imports)
MAX_BODY_ENV_VAR = "DEALFLOW_MAX_BODY_BYTES"
MAX_UPLOAD_ENV_VAR = "DEALFLOW_MAX_UPLOAD_BYTES"
# a browser session's limit from sign-in, and how long it may go without a request
SESSION_HOURS_ENV_VAR = "DEALFLOW_SESSION_HOURS"
SESSION_IDLE_ENV_VAR = "DEALFLOW_SESSION_IDLE_MINUTES"
DEFAULT_PORT = 8000
MIB = 1024 * 1024


def _positive(name: str, default: float, *, whole: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value: float
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = -1
    if not value > 0 or value == float("inf"):
        kind = "a whole number of bytes" if whole else "a number"
        raise SettingsError(f"{name}={raw!r}: give {kind} above 0")
    return value


@dataclass(frozen=True)
class WebSettings:
    host: str | None  # None: the default, which depends on whether access control is on
    port: int
    secret_key: str
    sso_header: str | None
    sso_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    secure_cookies: bool
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = MIB
    max_upload_bytes: int = 256 * MIB
    session_hours: float = 12.0
    session_idle_minutes: float = 60.0

    @classmethod
    def resolve(cls, *, host: str | None = None, port: int | None = None) -> WebSettings:
        raw_port = os.environ.get(PORT_ENV_VAR)
        if port is None and raw_port:
            if not raw_port.isdigit() or int(raw_port) > 65535:
                raise SettingsError(f"{PORT_ENV_VAR}={raw_port!r}: give a port number, 0 to 65535")
            port = int(raw_port)
        header = os.environ.get(SSO_HEADER_ENV_VAR, "").strip() or None
        proxies_raw = os.environ.get(SSO_PROXY_ENV_VAR, "").strip()
        if header and not proxies_raw:
            raise SettingsError(
                f"{SSO_HEADER_ENV_VAR} is set but {SSO_PROXY_ENV_VAR} is not: name the proxy's address, "
                "or anyone could claim any identity by sending the header"
            )
        proxies = []
        for item in filter(None, (p.strip() for p in proxies_raw.split(","))):
            try:
                proxies.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SettingsError(f"{SSO_PROXY_ENV_VAR}: {item!r} is not an IP address or network") from None
        return cls(
            host=host or os.environ.get(HOST_ENV_VAR) or None,
            port=DEFAULT_PORT if port is None else port,
            secret_key=os.environ.get(SECRET_ENV_VAR) or _stored_secret(),
            sso_header=header,
            sso_proxies=tuple(proxies),
            secure_cookies=os.environ.get(SECURE_COOKIES_ENV_VAR, "").lower() in ("1", "true", "yes"),
            allowed_hosts=tuple(
                h.strip().lower() for h in os.environ.get(ALLOWED_HOSTS_ENV_VAR, "").split(",") if h.strip()
            ),
            max_body_bytes=int(_positive(MAX_BODY_ENV_VAR, MIB, whole=True)),
            max_upload_bytes=int(_positive(MAX_UPLOAD_ENV_VAR, 256 * MIB, whole=True)),
            session_hours=_positive(SESSION_HOURS_ENV_VAR, 12.0),
            session_idle_minutes=_positive(SESSION_IDLE_ENV_VAR, 60.0),
        )

    def trusts_proxy(self, address: str | None) -> bool:
        if not self.sso_header or address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.sso_proxies)


def _stored_secret() -> str:
    """The key that signs session cookies: made once and kept in DEALFLOW_HOME, so that sessions
    outlive a restart; set DEALFLOW_SECRET_KEY when several servers must share it."""
    path = home() / "web-secret"
    try:
        if path.stat().st_mode & 0o077:  # made by hand, or copied, readable by others: owner only
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server made it meanwhile
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key)
        return key
    except OSError as exc:
        raise SettingsError(f"cannot read the session key {path}: {exc}; or set {SECRET_ENV_VAR}") from None
