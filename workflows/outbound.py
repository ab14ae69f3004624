"""Effects that call one activity and record what came of it: notifications and proposals.

Notifications are sent beside the deal's loop (`Notifier`): one that retries for minutes while
its channel is down holds up neither the log nor the deal's other work. One that cannot be
delivered is logged, not recorded (the reminder or escalation that asked for it is the deal's
fact). A proposal is made in a local activity, inside the workflow task that takes the rep's
action (unless the loop is still busy with an earlier effect or append), so the document usually
exists when the call that entered the stage returns; success and failure are both recorded as
events. A document made for a task that is then lost is made again, the same, by the task's
rerun; it is a file, not a record.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.activity_io import (
        GENERATE_PROPOSAL,
        LOCAL_RETRY_THRESHOLD,
        PROPOSAL_TIMEOUT,
        SEND_MESSAGE,
        SEND_TIMEOUT,
        OutgoingMessage,
        ProposalDocument,
        ProposalRequest,
        SentMessage,
    )
    from domain.effects import MakeProposal, Notify
    from domain.events import ProposalFailed, ProposalGenerated
    from workflows.activity_calls import ACTIVITY_FAILURES, NOTIFY_RETRY, PROPOSAL_RETRY, error_text
    from workflows.ledger import Ledger


class Notifier:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._sending: set[asyncio.Task[None]] = set()

    def send(self, effect: Notify) -> None:
        task = asyncio.create_task(notify(self._ledger, effect))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def idle(self) -> bool:
        """Nothing on its way: the run may end or continue as new."""
        return not self._sending


async def notify(ledger: Ledger, effect: Notify) -> None:
    message = OutgoingMessage(
        deal_id=ledger.state.deal_id,
        effect_key=f"notify/{effect.seq}",
        kind="notification",
        channel="notify",
        recipient=effect.to,
        subject=effect.subject,
        body=effect.body,
    )
    try:
        await workflow.execute_activity(
            SEND_MESSAGE,
            message,
            result_type=SentMessage,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=NOTIFY_RETRY,
        )
    except ActivityError as exc:
        workflow.logger.warning("notification %s not delivered: %s", message.effect_key, error_text(exc)[0])


async def propose(ledger: Ledger, effect: MakeProposal) -> None:
    template = ledger.pinned.templates.get(effect.template)
    if template is None:
        ledger.note(ProposalFailed, template=effect.template, error="template text missing from the pinned definition")
        return
    request = ProposalRequest(
        deal_id=ledger.state.deal_id,
        version=ledger.pinned.version,
        template_id=effect.template,
        template=template,
        values=ledger.values(),
    )
    try:
        doc: ProposalDocument = await workflow.execute_local_activity(
            GENERATE_PROPOSAL,
            request,
            result_type=ProposalDocument,
            start_to_close_timeout=PROPOSAL_TIMEOUT,
            retry_policy=PROPOSAL_RETRY,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        )
    except ACTIVITY_FAILURES as exc:
        error, missing = error_text(exc)
        ledger.note(ProposalFailed, template=effect.template, missing=missing, error=error)
        return
    ledger.note(
        ProposalGenerated,
        template=effect.template,
        path=doc.path,
        html_path=doc.html_path,
        content_hash=doc.content_hash,
    )
