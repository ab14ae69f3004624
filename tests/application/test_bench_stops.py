"""A bench stopped by SIGTERM or Ctrl-C (SIGINT) mid-run leaves nothing it started behind: no
worker, web server, Temporal dev server or PostgreSQL (by pid, by process group and by port),
and it exits with 128 + the signal's number without writing a result.

Each case runs a real bench at its `tiny` size, in seconds. Not marked `slow`, so it runs
wherever the suite does (`make test`, CI, `-m "not slow"`).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bench import Output, Seen, bench


def _until(proc: subprocess.Popen[str], out: Output, seen: Seen, marker: str) -> None:
    """Until the bench prints a line with `marker`, looking at its processes meanwhile."""
    deadline = time.monotonic() + 300
    while not any(marker in line for line in out.got):
        seen.look(proc.pid)
        assert proc.poll() is None, f"the bench ended before {marker!r}:\n{out.rest()}"
        assert time.monotonic() < deadline, f"no {marker!r} in 300 s:\n{''.join(out.got)}"
        out.next(timeout=0.1)
    seen.look(proc.pid)


CASES = [
    # the system bench in its throughput run: PostgreSQL, Temporal, the deal's and the bare worker
    ("system_bench", signal.SIGTERM, "deal throughput", {"worker", "bench.bare"}),
    # the web bench in its first part: the same, with `dealflow serve`
    ("web_bench", signal.SIGINT, "a rep's action", {"worker", "serve"}),
    # the metrics bench while loading: PostgreSQL alone
    ("metrics_bench", signal.SIGTERM, "loaded", set()),
]


@pytest.mark.parametrize(("module", "signum", "marker", "children"), CASES, ids=[c[0] for c in CASES])
def test_a_signal_mid_run_stops_everything_the_bench_started(
    tmp_path: Path, module: str, signum: signal.Signals, marker: str, children: set[str]
) -> None:
    with bench(module, tmp_path) as (proc, out, seen):
        _until(proc, out, seen, marker)
        commands = set()
        for pid in seen.processes:
            with contextlib.suppress(OSError):
                commands.add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        # the case stops what it means to: the servers and processes are up when the signal goes
        assert seen.postmasters, "no PostgreSQL seen"
        assert len(seen.ports) == (1 if module == "metrics_bench" else 2), seen.ports
        for name in children:
            assert any(name in c for c in commands), f"no {name} among {commands}"
        proc.send_signal(signum)
        proc.wait(120)
        printed = out.rest()
        assert proc.returncode == 128 + signum, printed
        assert f"stopped by {signum.name}: nothing written" in printed
        assert seen.left() == []
        assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
