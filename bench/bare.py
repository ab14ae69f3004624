"""The baseline for the throughput and latency benchmarks: a workflow with no logic that takes
the same starts and updates as a deal (kept in a module of its own, which the sandbox imports)."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="Bare")
class BareWorkflow:
    def __init__(self) -> None:
        self._steps = 0
        self._done = False

    @workflow.run
    async def run(self, steps: int) -> int:
        await workflow.wait_condition(lambda: self._done)
        return self._steps

    @workflow.update
    def step(self, last: bool) -> int:
        self._steps += 1
        self._done = last
        return self._steps
