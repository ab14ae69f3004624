"""Follow-on (rebuy) deals: when one falls due, start it as a deal workflow of its own.

Which version it runs is asked of the registry by an activity (an experiment running for the
process may choose it); the new deal is linked both ways, by `follows` in its start and by a
`FollowOnStarted` event here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain import decide
    from domain.activity_io import PREPARE_FOLLOW_ON, FollowOnRequest, PreparedFollowOn
    from domain.commands import REVISION, DealInput, StartDeal, workflow_id
    from domain.events import FollowOnFailed, FollowOnStarted
    from domain.state import DealState, FollowOn
    from workflows.activity_calls import FOLLOW_ON_RETRY, error_text
    from workflows.ledger import Ledger
    from workflows.search_attributes import search_attributes

PREPARE_TIMEOUT = timedelta(seconds=30)


async def start_follow_on(ledger: Ledger, follow_on: FollowOn, *, time_scale: float, flush_seconds: float) -> None:
    s = ledger.state
    new_id = f"{s.deal_id}.{follow_on.kind}"
    try:
        prepared: PreparedFollowOn = await workflow.execute_activity(
            PREPARE_FOLLOW_ON,
            FollowOnRequest(process=follow_on.process, deal_id=new_id),
            result_type=PreparedFollowOn,
            start_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=FOLLOW_ON_RETRY,
        )
    except ActivityError as exc:
        ledger.note(FollowOnFailed, kind=follow_on.kind, error=error_text(exc)[0])
        return
    pinned = prepared.pinned
    start = StartDeal(
        deal_id=new_id,
        owner=s.owner,
        actor=decide.SYSTEM_ACTOR,
        fields=dict(s.fields),
        experiment=prepared.experiment,
        follows=s.deal_id,
        follow_kind=follow_on.kind,
    )
    preview = DealState(
        deal_id=new_id, process=pinned.name, version=pinned.version, owner=s.owner, stage=pinned.definition.stages[0].id
    )
    try:
        await workflow.start_child_workflow(
            "Deal",
            DealInput(
                start=start, pinned=pinned, time_scale=time_scale, log_flush_seconds=flush_seconds, revision=REVISION
            ),
            id=workflow_id(new_id),
            parent_close_policy=ParentClosePolicy.ABANDON,  # a deal of its own: it outlives this one
            search_attributes=TypedSearchAttributes(search_attributes(preview)),
        )
    except WorkflowAlreadyStartedError:
        ledger.note(FollowOnFailed, kind=follow_on.kind, error=f"a deal {new_id!r} already exists")
        return
    ledger.note(FollowOnStarted, kind=follow_on.kind, deal_id=new_id, process=pinned.name, version=pinned.version)
