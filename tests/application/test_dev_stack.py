"""`dealflow dev`: the embedded stack in the foreground, found by other commands, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from store.embedded import free_port
from tests.support import ROOT, new_deal_id
from tests.support.cli import DEALFLOW, dealflow
from worker.devserver import port_open, temporal_binary

pytestmark = pytest.mark.slow


async def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_dev_stack_is_found_without_configuration_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # without XDG_RUNTIME_DIR too (su, cron, containers): nothing may warn about it
    unset = {"TEMPORAL_ADDRESS", "DATABASE_URL", "DEALFLOW_TASK_QUEUE", "XDG_RUNTIME_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["DEALFLOW_HOME"] = str(home)
    temporal_port, ui_port, pg_port = free_port(), free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        *DEALFLOW,
        "dev",
        "--temporal-port",
        str(temporal_port),
        "--ui-port",
        str(ui_port),
        "--postgres-port",
        str(pg_port),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait(lambda: (home / "stack.json").exists(), 60, "stack.json")
        stack = json.loads((home / "stack.json").read_text())
        assert stack["temporal_address"] == f"127.0.0.1:{temporal_port}"
        assert (home / "temporal.db").exists() and (home / "postgres" / "PG_VERSION").exists()

        deployed = await dealflow(env, "definitions", "deploy", str(ROOT / "definitions/processes/three-phase.yaml"))
        assert (deployed.code, deployed.err) == (0, "")
        deal = new_deal_id("dev")
        assert (
            await dealflow(env, "deal", "start", "--process", "three-phase", "--deal-id", deal, "--owner", "una")
        ).code == 0
        done = await dealflow(
            env,
            "deal",
            "complete",
            deal,
            "--stage",
            "first-contact",
            "--as",
            "una",
            "--fact",
            "buying_process_started=yes",
        )
        assert done.code == 0, done.err

        async def listed() -> str:
            cli = await asyncio.create_subprocess_exec(
                temporal_binary(),
                "workflow",
                "list",
                "--address",
                f"127.0.0.1:{temporal_port}",
                "--query",
                'DealStage="demonstration" AND DealOwner="una"',
                "--output",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await cli.communicate()
            return out.decode()

        deadline = time.monotonic() + 30
        while f"deal-{deal}" not in (found := await listed()):
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.5)
        assert port_open("127.0.0.1", ui_port), "the Temporal UI should listen on its port"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert (proc.returncode, err.decode()) == (0, ""), "dealflow dev printed on stderr"
    assert "stopped" in out.decode()
    assert not (home / "stack.json").exists()
    assert not port_open("127.0.0.1", temporal_port) and not port_open("127.0.0.1", pg_port)
    assert not (home / "postgres" / "postmaster.pid").exists()


async def test_dev_stack_keeps_state_across_restarts(tmp_path: Path) -> None:
    """Temporal's state is a file under .dealflow/: a deal started before a restart is there after it."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL", "DEALFLOW_TASK_QUEUE"}}
    env["DEALFLOW_HOME"] = str(home)
    deal = new_deal_id("keep")
    ports = [str(free_port()), str(free_port())]
    for round_ in range(2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "dev",
            "--temporal-port",
            ports[0],
            "--ui-port",
            ports[1],
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await _wait(lambda: (home / "stack.json").exists(), 60, "stack.json")
            if round_ == 0:
                deployed = await dealflow(
                    env, "definitions", "deploy", str(ROOT / "definitions/processes/three-phase.yaml")
                )
                assert deployed.code == 0, deployed.err
                started = await dealflow(
                    env, "deal", "start", "--process", "three-phase", "--deal-id", deal, "--owner", "vera"
                )
                assert started.code == 0, started.err
            else:
                status = await dealflow(env, "deal", "status", deal, "--json")
                assert status.code == 0, status.err
                assert status.json()["stage"] == "first-contact"
                # the start was appended to the log by the deal's flush timer, which survived
                # the restart in Temporal and fires now: the projection catches up
                for _ in range(50):
                    listed = await dealflow(env, "deal", "list", "--owner", "vera", "--json")
                    if listed.json():
                        break
                    await asyncio.sleep(0.2)
                assert [d["deal_id"] for d in listed.json()] == [deal]
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0
