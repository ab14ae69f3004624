"""TLS, mutual TLS and an API key to Temporal; TLS in DATABASE_URL to PostgreSQL; and the clear
errors a wrong setting gets. Handshakes are real: certificates are made per run, the Temporal
dev server sits behind a TLS proxy, and so does PostgreSQL, behind one that speaks its SSLRequest
negotiation (the embedded server is built without OpenSSL; see tests/support/tls.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store.db import StoreUnavailable, connect_pool
from tests.support.cli import dealflow
from tests.support.tls import Pki, make_pki, postgres_tls_proxy, tls_proxy
from worker.connect import connect_temporal, tls_config
from worker.settings import Settings, SettingsError


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_a_client_over_tls_drives_a_deal(
    settings: Settings, pool: asyncpg.Pool, pki: Pki, worker: None, deployed: dict[str, PinnedDefinition]
) -> None:
    async with tls_proxy(settings.temporal_address, pki, require_client_cert=False) as address:
        over_tls = replace(settings, temporal_address=address, tls_ca=str(pki.ca), tls_server_name="localhost")
        assert over_tls.uses_tls
        temporal = await connect_temporal(over_tls)
        client = DealflowClient(temporal, pool, over_tls)
        deal_id = f"tls-{uuid.uuid4().hex[:8]}"
        await client.start_deal("three-phase", deal_id, "tia")
        status = await client.status(deal_id)
        assert status.state.stage == "first-contact"

        plain = replace(settings, temporal_address=address)  # TLS listener, plaintext client
        with pytest.raises(ConnectionError, match="without TLS"):
            await connect_temporal(plain)
        other_ca = make_pki(Path(pki.ca).parent / "other", ca_name="someone else")
        untrusted = replace(over_tls, tls_ca=str(other_ca.ca))
        with pytest.raises(ConnectionError, match="over TLS"):
            await connect_temporal(untrusted)


async def test_mutual_tls_needs_the_client_certificate(settings: Settings, pki: Pki, temporal_client: Client) -> None:
    async with tls_proxy(settings.temporal_address, pki, require_client_cert=True) as address:
        base = replace(settings, temporal_address=address, tls_ca=str(pki.ca), tls_server_name="localhost")
        with pytest.raises(ConnectionError, match="over TLS"):
            await connect_temporal(base)
        mutual = replace(base, tls_cert=str(pki.client_cert), tls_key=str(pki.client_key))
        client = await connect_temporal(mutual)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        direct = await temporal_client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version == direct.server_version != ""  # the same server, through the front


async def test_an_api_key_is_sent_with_every_call(settings: Settings, pki: Pki) -> None:
    async with tls_proxy(settings.temporal_address, pki, require_client_cert=False) as address:
        keyed = replace(
            settings, temporal_address=address, tls_ca=str(pki.ca), tls_server_name="localhost", api_key="k-123"
        )
        assert keyed.uses_tls, "an API key turns TLS on unless TEMPORAL_TLS=false says otherwise"
        client = await connect_temporal(keyed)
        assert client.api_key == "k-123"
        await client.count_workflows()  # the dev server accepts any key; the call goes through TLS


@pytest.mark.unit
def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("DEALFLOW_HOME", "/nonexistent-dealflow-home")
    monkeypatch.setenv("TEMPORAL_TLS_CA", str(pki.ca))
    monkeypatch.setenv("TEMPORAL_TLS_CERT", str(pki.client_cert))
    monkeypatch.setenv("TEMPORAL_TLS_KEY", str(pki.client_key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    monkeypatch.setenv("TEMPORAL_API_KEY", "k")
    s = Settings.resolve()
    assert (s.tls_ca, s.tls_cert, s.tls_key, s.tls_server_name, s.api_key) == (
        str(pki.ca),
        str(pki.client_cert),
        str(pki.client_key),
        "temporal.internal",
        "k",
    )
    config = tls_config(s)
    assert not isinstance(config, bool)
    assert config.server_root_ca_cert == pki.ca.read_bytes() and config.domain == "temporal.internal"
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    assert tls_config(Settings.resolve()) is False
    monkeypatch.setenv("TEMPORAL_TLS", "maybe")
    with pytest.raises(SettingsError, match="TEMPORAL_TLS='maybe': use true or false"):
        Settings.resolve()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_cert": "client.pem"}, "mutual TLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"),
        ({"tls_ca": "/nonexistent/ca.pem"}, "TEMPORAL_TLS_CA=/nonexistent/ca.pem: cannot read it"),
    ],
)
def test_wrong_tls_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        tls_config(replace(Settings(), **change))


async def test_the_cli_names_a_missing_certificate(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "TEMPORAL_TLS_CA": "/nonexistent/ca.pem"}
    run = await dealflow(env, "deal", "list")
    assert run.code == 2 and "TEMPORAL_TLS_CA=/nonexistent/ca.pem: cannot read it" in run.err


async def test_postgresql_over_tls_from_database_url(pki: Pki, database_url: str, tmp_path: Path) -> None:
    """DATABASE_URL's sslmode and sslrootcert are honoured: verified TLS works, a server whose
    certificate another CA signed is refused, and requiring TLS of a server without it fails."""
    parsed = urlparse(database_url)
    async with postgres_tls_proxy(f"{parsed.hostname}:{parsed.port}", pki) as proxy:
        url = database_url.replace(f"{parsed.hostname}:{parsed.port}", proxy.address)
        pool = await connect_pool(f"{url}?sslmode=verify-full&sslrootcert={pki.ca}", max_size=2)
        try:
            assert await pool.fetchval("SELECT 41 + 1") == 42
        finally:
            await pool.close()
        assert proxy.sessions == ["TLSv1.3"]  # the pool's one connection, encrypted
        other = make_pki(tmp_path / "other", ca_name="someone else")
        with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):
            await connect_pool(f"{url}?sslmode=verify-full&sslrootcert={other.ca}")
    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):  # the test server has no TLS
        await connect_pool(f"{database_url}?sslmode=require")
