"""The `dealflow` CLI run as a separate process, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE, create_subprocess_exec
from dataclasses import dataclass
from typing import Any

from tests.support import ROOT

DEALFLOW = [sys.executable, "-m", "cli.main"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def dealflow(env: dict[str, str], *args: str, timeout: float = 60) -> Run:
    """The CLI as a separate process. Awaited as an asyncio subprocess: the worker of the session
    runs in the test process, and a blocking call would stop it serving the deal the CLI talks to.
    A run that outlasts `timeout` is killed and fails the test."""
    proc = await create_subprocess_exec(*DEALFLOW, *args, env=env, cwd=ROOT, stdout=PIPE, stderr=PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"dealflow {' '.join(args)} still running after {timeout} s") from None
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())
