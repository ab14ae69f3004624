"""A bench's result file says what it ran on and under (bench/machine.py), and a bench that ends
normally leaves nothing it started behind. Seconds each; not marked `slow`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench.machine import LoadMonitor
from tests.support.bench import bench


def test_a_finished_bench_writes_machine_and_load_and_leaves_nothing(tmp_path: Path) -> None:
    with bench("append_bench", tmp_path) as (proc, out, seen):
        while proc.poll() is None:
            seen.look(proc.pid)
            out.next(timeout=0.1)
        printed = out.rest()
        assert proc.returncode == 0, printed
        assert seen.postmasters, "no PostgreSQL seen"
        assert seen.left() == []
    result = json.loads((tmp_path / "results" / "append-tiny.json").read_text())
    assert (result["benchmark"], result["size"]) == ("append", "tiny")
    assert result["append_events_per_s"] > 0 and result["copy_events_per_s"] > 0
    m = result["machine"]
    assert m["cores"] == os.cpu_count() and m["cores_usable"] >= 1 and m["memory_gib"] > 0
    assert m["cpu_model"] != "unknown" and m["python"].count(".") == 2
    assert m["temporal_server"].startswith("temporal version") and "Server" in m["temporal_server"]
    assert m["postgres"].startswith("postgres (PostgreSQL)") and m["temporalio"]
    load = result["load"]
    assert len(load["loadavg_before"]) == len(load["loadavg_after"]) == 3
    assert load["cpu_seconds_this_bench"] > 0  # its own work: generating, appending, PostgreSQL
    assert load["cpu_seconds_machine"] >= load["cpu_seconds_others"]
    assert isinstance(load["alone"], bool) and load["alone"] == (load["others_share_of_cores"] < 0.05)


SPIN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    if sys.argv[1] == "orphan" and os.fork():
        sys.exit(0)  # the grandchild spins on, no longer a descendant of the test
    while time.process_time() < 0.6:
        pass
    Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(60)
    """
)


def _spun(marker: Path) -> int:
    """The spinner's pid, once it has spun (however long a shared machine takes to let it)."""
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the spinner never finished"
        time.sleep(0.05)
    return int(marker.read_text())


def test_the_load_counts_descendants_as_the_bench_and_the_rest_as_others(tmp_path: Path) -> None:
    """A child of the process counts as the bench's own CPU; a process that is not its descendant
    (an orphan here; another session's work on a shared machine) as others'."""
    monitor = LoadMonitor(interval=0.2)
    child = subprocess.Popen([sys.executable, "-c", SPIN, "child", str(tmp_path / "child")])
    orphan = 0
    try:
        subprocess.run([sys.executable, "-c", SPIN, "orphan", str(tmp_path / "orphan")], check=True)
        _spun(tmp_path / "child")
        orphan = _spun(tmp_path / "orphan")
        figures = monitor.stop()  # both still alive, asleep
    finally:
        child.kill()
        child.wait()
        if orphan:
            os.kill(orphan, signal.SIGKILL)
    assert figures["cpu_seconds_this_bench"] >= 0.6
    assert figures["cpu_seconds_others"] >= 0.6
    assert figures["cpu_seconds_machine"] >= 1.2
    assert any(o["command"] == "python" or o["command"].startswith("python") for o in figures["busiest_others"])
