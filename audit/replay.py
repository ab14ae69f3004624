"""Replaying recorded histories against the current workflow code.

A history that no longer replays means the code changed in a way running deals would trip
over: the report names the workflow, the run and the non-determinism Temporal found.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.run import WORKFLOWS


@dataclass(frozen=True)
class ReplayResult:
    workflow_id: str
    run_id: str
    workflow_type: str
    events: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def replayer() -> Replayer:
    """The same workflows and data converter as the worker: what runs is what is replayed."""
    return Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)


async def replay(histories: Iterable[WorkflowHistory], *, progress: bool = False) -> list[ReplayResult]:
    items = list(histories)
    results: list[ReplayResult] = []
    engine = replayer()
    for n, history in enumerate(items, start=1):
        started = history.events[0].workflow_execution_started_event_attributes
        outcome = await engine.replay_workflow(history, raise_on_replay_failure=False)
        failure = outcome.replay_failure
        results.append(
            ReplayResult(
                workflow_id=history.workflow_id,
                run_id=started.original_execution_run_id or "",
                workflow_type=started.workflow_type.name,
                events=len(history.events),
                error=None if failure is None else f"{type(failure).__name__}: {failure}",
            )
        )
        if progress:
            _bar(n, len(items))
    if progress and items:
        print(file=sys.stderr)
    return results


def _bar(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    print(f"\rreplaying [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
