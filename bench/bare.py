"""The baseline for the throughput and latency benchmarks: a workflow with no logic that takes
the same starts and updates as a deal (kept in a module of its own, which the sandbox imports).

    python -m bench.bare ADDRESS TASK_QUEUE

runs a worker for it in a process of its own, as `dealflow worker` runs the deal's.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


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


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[BareWorkflow]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
