"""Two versions of one change to the deal workflow, for the replay tests (kept lean: the
workflow sandbox re-imports this module)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.commands import DealInput
    from domain.state import DealState
    from workflows.deal import DealWorkflow


@workflow.defn(name="Deal")
class DealWithUnguardedPause(DealWorkflow):
    """A careless change: a new timer before every append, for deals already running too."""

    @workflow.init
    def __init__(self, input: DealInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: DealInput) -> DealState:
        return await super().run(input)

    async def _flush(self) -> None:
        await workflow.sleep(timedelta(milliseconds=1))
        await super()._flush()


@workflow.defn(name="Deal")
class DealWithPatchedPause(DealWorkflow):
    """The same change done safely: only executions that reach it with the new code take it."""

    @workflow.init
    def __init__(self, input: DealInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: DealInput) -> DealState:
        return await super().run(input)

    async def _flush(self) -> None:
        if workflow.patched("pause-before-append"):
            await workflow.sleep(timedelta(milliseconds=1))
        await super()._flush()
