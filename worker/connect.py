"""Connecting to Temporal with dealflow's settings: address, namespace, TLS and API key.

Kept apart from the worker so that clients (the CLI, the Python client) connect without importing
the workflows, activities and channels a worker runs.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from worker import tracing
from worker.settings import Settings, SettingsError


def _read(path: str, var: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"{var}={path}: cannot read it: {exc.strerror or exc}") from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What `Client.connect` is given as `tls`: off, on with the system's CAs, or spelled out."""
    if not settings.uses_tls:
        return False
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("mutual TLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY")
    if not (settings.tls_ca or settings.tls_cert or settings.tls_server_name):
        return True
    return TLSConfig(
        server_root_ca_cert=_read(settings.tls_ca, "TEMPORAL_TLS_CA") if settings.tls_ca else None,
        client_cert=_read(settings.tls_cert, "TEMPORAL_TLS_CERT") if settings.tls_cert else None,
        client_private_key=_read(settings.tls_key, "TEMPORAL_TLS_KEY") if settings.tls_key else None,
        domain=settings.tls_server_name,
    )


async def connect_temporal(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """A client with dealflow's data converter, traced when tracing is on (worker.tracing); a
    worker passes the `runtime` that exports the SDK's metrics (worker.telemetry)."""
    tls = tls_config(settings)
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=pydantic_data_converter,
            tls=tls,
            api_key=settings.api_key,
            interceptors=tracing.interceptors(),
            runtime=runtime,
        )
    except RuntimeError as exc:
        how = "over TLS" if tls else "without TLS"
        raise ConnectionError(
            f"cannot reach Temporal at {settings.temporal_address} {how} (namespace {settings.namespace!r}): {exc}. "
            "Start the embedded stack with 'dealflow dev' or set TEMPORAL_ADDRESS (and TEMPORAL_TLS_* for TLS)."
        ) from exc
