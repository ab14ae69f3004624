"""Where dealflow's servers are: the environment first, then a running embedded stack, then
the local defaults. Every command resolves settings the same way, so `dealflow deal ...` finds
the stack that `dealflow dev` started without any configuration."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_TASK_QUEUE = "dealflow"

# The environment a worker or client reads (docker-compose.yml must provide these to the worker).
ENV_VARS = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DATABASE_URL", "DEALFLOW_TASK_QUEUE")
# Optional: TLS, mutual TLS and an API key for Temporal (the names the Temporal CLI uses).
# PostgreSQL's TLS goes in DATABASE_URL itself (?sslmode=verify-full&sslrootcert=...).
TLS_ENV_VARS = (
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CA",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_API_KEY",
)
# Optional: how long a deal gathers events before appending them to the log (seconds, 0 to 60;
# 0 appends as soon as there is anything to append). Unset: the default (domain.commands).
LOG_FLUSH_ENV_VAR = "DEALFLOW_LOG_FLUSH_SECONDS"
# Optional: where the worker serves /metrics, /livez and /readyz (host:port, port 0 for any free
# one, or "off"), and how log lines are written (text or json). See docs/operations.md.
METRICS_ENV_VAR = "DEALFLOW_METRICS_ADDRESS"
LOG_FORMAT_ENV_VAR = "DEALFLOW_LOG_FORMAT"
OBSERVABILITY_ENV_VARS = (METRICS_ENV_VAR, LOG_FORMAT_ENV_VAR)
# `dealflow worker` listens on every interface, for Prometheus and the orchestrator's probes;
# `dealflow dev` on loopback only (and on a free port when this one is taken)
WORKER_METRICS_ADDRESS = "0.0.0.0:9464"
DEV_METRICS_ADDRESS = "127.0.0.1:9464"
LOG_FORMATS = ("text", "json")
# Optional, for workers: whether the worker takes the activities its workflow tasks schedule
# eagerly, in the answer to the task's completion (true by default; it needs the server's
# `system.enableActivityEagerExecution`, which `dealflow dev` turns on). See docs/operations.md.
EAGER_ACTIVITIES_ENV_VAR = "DEALFLOW_EAGER_ACTIVITIES"
# Optional, for clients: how long one request (a start, a rep's action) may take, every attempt
# included, before the caller is told its outcome is unknown (seconds, more than 0, at most 3600;
# default 60); and the deadline of each call to Temporal within it (seconds, more than 0, at most
# 600; unset: none, the SDK waits for the answer). A call that times out or whose connection drops
# is sent again under the same id (app/retry.py).
REQUEST_DEADLINE_ENV_VAR = "DEALFLOW_REQUEST_DEADLINE_SECONDS"
RPC_TIMEOUT_ENV_VAR = "DEALFLOW_RPC_TIMEOUT_SECONDS"
REQUEST_DEADLINE_SECONDS = 60.0


class SettingsError(ValueError):
    """The configuration itself is wrong (a file missing, a flag unreadable); the message says which."""


def home() -> Path:
    return Path(os.environ.get("DEALFLOW_HOME", ".dealflow")).resolve()


def proposals_dir() -> Path:
    return Path(os.environ.get("DEALFLOW_PROPOSALS_DIR") or home() / "proposals")


def outbox_dir() -> Path:
    return Path(os.environ.get("DEALFLOW_OUTBOX_DIR") or home() / "outbox")


def stack_file() -> Path:
    return home() / "stack.json"


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/dealflow"
    task_queue: str = DEFAULT_TASK_QUEUE
    source: str = "defaults"
    tls: bool | None = None  # None: on when a certificate, a CA or an API key is given
    tls_ca: str | None = None  # file: the CA that signed the server's certificate
    tls_cert: str | None = None  # file: the client certificate, for mutual TLS
    tls_key: str | None = None  # file: its private key
    tls_server_name: str | None = None  # the name to expect on the server's certificate
    api_key: str | None = None  # Temporal Cloud and servers with an authorizer
    log_flush_seconds: float | None = None  # for deals this client starts; None: the default
    request_deadline_seconds: float = REQUEST_DEADLINE_SECONDS  # a client's request, all attempts
    rpc_timeout_seconds: float | None = None  # each call to Temporal within it; None: no deadline

    @property
    def uses_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return bool(self.tls_ca or self.tls_cert or self.api_key)

    @classmethod
    def resolve(cls) -> Settings:
        settings = cls()
        stack = read_stack()
        if stack is not None:
            settings = replace(settings, source=f"embedded stack ({stack_file()})", **stack)
        env: dict[str, Any] = {
            field: os.environ.get(var)
            for field, var in zip(
                ("temporal_address", "namespace", "database_url", "task_queue"), ENV_VARS, strict=True
            )
        }
        given = {k: v for k, v in env.items() if v}
        tls = _tls_from_env()
        if given or tls:
            settings = replace(
                settings, source="environment" if stack is None else settings.source + " + environment", **given
            )
            settings = replace(settings, **tls)
        flush = _seconds_from_env(LOG_FLUSH_ENV_VAR, 60, zero=True)
        if flush is not None:
            settings = replace(settings, log_flush_seconds=flush)
        deadline = _seconds_from_env(REQUEST_DEADLINE_ENV_VAR, 3600)
        if deadline is not None:
            settings = replace(settings, request_deadline_seconds=deadline)
        rpc_timeout = _seconds_from_env(RPC_TIMEOUT_ENV_VAR, 600)
        if rpc_timeout is not None:
            settings = replace(settings, rpc_timeout_seconds=rpc_timeout)
        return settings


def read_stack() -> dict[str, Any] | None:
    """The addresses a running `dealflow dev` wrote, if its process is still alive."""
    path = stack_file()
    try:
        data = json.loads(path.read_text())
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: data[k] for k in ("temporal_address", "namespace", "database_url", "task_queue") if k in data}


def write_stack(settings: Settings, pid: int) -> None:
    path = stack_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(settings).items() if k != "source"} | {"pid": pid}
    path.write_text(json.dumps(data, indent=2))


def clear_stack() -> None:
    stack_file().unlink(missing_ok=True)


def _flag(var: str) -> bool | None:
    raw = os.environ.get(var, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{var}={os.environ[var]!r}: use true or false")


def metrics_address(default: str) -> tuple[str, int] | None:
    """The worker's HTTP endpoint from `DEALFLOW_METRICS_ADDRESS`, else `default`; None when off."""
    raw = os.environ.get(METRICS_ENV_VAR, "").strip() or default
    if raw.lower() in ("off", "none", "false"):
        return None
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")  # an IPv6 address comes bracketed: [::]:9464
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"{METRICS_ENV_VAR}={raw!r}: give host:port (0.0.0.0:9464; port 0: any free one) or off")
    return host, int(port)


def eager_activities() -> bool:
    """Whether the worker asks for its activities eagerly (`DEALFLOW_EAGER_ACTIVITIES`, default on)."""
    flag = _flag(EAGER_ACTIVITIES_ENV_VAR)
    return True if flag is None else flag


def log_format() -> str:
    raw = os.environ.get(LOG_FORMAT_ENV_VAR, "").strip().lower() or "text"
    if raw not in LOG_FORMATS:
        raise SettingsError(f"{LOG_FORMAT_ENV_VAR}={os.environ[LOG_FORMAT_ENV_VAR]!r}: use text or json")
    return raw


def _seconds_from_env(var: str, at_most: float, *, zero: bool = False) -> float | None:
    """Seconds from `var` (unset: None), more than 0 (or 0 itself, where `zero`) and at most `at_most`."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not (seconds >= 0 if zero else seconds > 0) or not seconds <= at_most:  # (also NaN)
        least = "from 0" if zero else "more than 0"
        raise SettingsError(f"{var}={raw!r}: give a number of seconds {least}, at most {at_most:g}")
    return seconds


def _tls_from_env() -> dict[str, Any]:
    found: dict[str, Any] = {}
    flag = _flag("TEMPORAL_TLS")
    if flag is not None:
        found["tls"] = flag
    for field, var in (
        ("tls_ca", "TEMPORAL_TLS_CA"),
        ("tls_cert", "TEMPORAL_TLS_CERT"),
        ("tls_key", "TEMPORAL_TLS_KEY"),
        ("tls_server_name", "TEMPORAL_TLS_SERVER_NAME"),
        ("api_key", "TEMPORAL_API_KEY"),
    ):
        if os.environ.get(var):
            found[field] = os.environ[var]
    return found
