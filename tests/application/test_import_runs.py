"""An import's run record tells how it ended: `dealflow import runs` lists the runs, and an import
killed outright mid-run shows as killed and leaves none of its worker processes behind."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import ROOT, wait_for
from tests.support.cli import DEALFLOW, dealflow

CLOSED = 4500  # three batches of closed deals: built in worker processes, long enough to be killed mid-run


def _descendants(pid: int) -> dict[int, str]:
    """The processes under `pid`, each with its command line (read from /proc: Linux only)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, of in parents.items():
            if of == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int, cmdline: str) -> bool:
    """Still running as that process (a zombie, or a pid taken by another process, is not it)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X") and _cmdline(pid) == cmdline


async def test_a_killed_import_shows_as_killed_and_leaves_no_worker_running(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = ["deal_id,stage,entered_at,owner,lost_reason"]
    for n in range(CLOSED):
        lines += [
            f"k{n}-{tag},prospecting,2026-01-05T09:00:00Z,rita,",
            f"k{n}-{tag},lost,2026-01-09T09:00:00Z,rita,timing",
        ]
    export = tmp_path / f"many-{tag}.csv"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        *DEALFLOW, "import", "csv", str(export), "--process", "seven-stage", "--json",
        env=cli_env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    workers: dict[int, str] = {}

    async def building() -> bool:
        workers.update({p: c for p, c in _descendants(proc.pid).items() if "multiprocessing" in c})
        return any("spawn_main" in c for c in workers.values()) or proc.returncode is not None

    try:
        await wait_for(building, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL, "killed mid-run"
    assert any("spawn_main" in c for c in workers.values()), "while its workers were building histories"

    async def all_stopped() -> bool:
        return not any(_alive(pid, cmdline) for pid, cmdline in workers.items())

    await wait_for(all_stopped, timeout=30)

    async def ours() -> dict[str, object]:
        listed = await dealflow(cli_env, "import", "runs", "--json")
        assert listed.code == 0, listed.err
        return next(r for r in listed.json() if r["files"][0]["file"] == export.name)

    async def killed() -> bool:
        return (await ours())["status"] == "killed"

    await wait_for(killed, timeout=30)
    run = await ours()
    assert run["finished_at"] is None and "its process ended" in str(run["error"])
    table = await dealflow(cli_env, "import", "runs")
    assert table.code == 0 and "killed" in table.out and str(run["import_id"]) in table.out, table.out


async def test_import_runs_refuses_a_limit_below_one(cli_env: dict[str, str], client: DealflowClient) -> None:
    refused = await dealflow(cli_env, "import", "runs", "--limit", "0")
    assert refused.code != 0 and "--limit 0" in refused.err and "Traceback" not in refused.err
