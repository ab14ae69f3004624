"""What the deal's owner or manager is told when a stage's deadline passes and when the deal is
escalated, and what its new owner is told when it is handed over to them: fixed texts in the
template language, filled from the deal's state.

The deal workflow renders them in workflow code, where an exception would fail the workflow task,
so they must always render: every name they use (`NAMES`) gets a value here, with a fallback where
the state may lack one, and the tests render them for an empty state. They are not part of the
definition language (yet); a process that wants its own would name them in its definition, and
the loader would check them against `NAMES` like any other template.
"""

from __future__ import annotations

from definitions.templates import MessageTemplate, MessageText
from domain.events import Escalated, HandedOff
from domain.state import DealState

# every name the templates below may use, and `subject` and `sentence` in bodies
NAMES = ("deal_id", "customer", "process", "stage", "owner", "level", "reassigned_to", "team", "from_owner", "reason")

_BODY = "{sentence}\n\nOwner: {owner}\nStage: {stage}\n"
_DEAL = "deal {deal_id} ({customer}) at {stage}"

REMINDER = MessageTemplate(subject=f"Reminder: {_DEAL} is overdue", body=_BODY)
ESCALATION = MessageTemplate(subject=f"Escalation {{level}}: {_DEAL} escalated", body=_BODY)
REASSIGNMENT = MessageTemplate(subject=f"Escalation {{level}}: {_DEAL} reassigned to {{reassigned_to}}", body=_BODY)
HANDOFF = MessageTemplate(
    subject=f"Handed over to you: {_DEAL}",
    body="{sentence}\n\nFrom: {from_owner}\nTeam: {team}\nWhy: {reason}\n\nOwner: {owner}\nStage: {stage}\n",
)


def _first(*candidates: str | None) -> str:
    return next((c for c in candidates if c and c.strip()), "-")


def deal_values(state: DealState) -> dict[str, str]:
    """The deal's names for notifications: `customer` falls back to the process's name, and
    nothing is ever blank."""
    return {
        "deal_id": _first(state.deal_id),
        "customer": _first(state.fields.get("customer"), state.process, state.deal_id),
        "process": _first(state.process),
        "stage": _first(state.stage),
        "owner": _first(state.owner),
    }


def reminder_text(state: DealState) -> MessageText:
    """The reminder sent to the owner when the current stage's deadline has passed."""
    return REMINDER.render(deal_values(state))


def escalation_text(state: DealState, event: Escalated) -> MessageText:
    """The message of one escalation rung; `state` is the deal after `event` (a reassignment
    has already made the new owner the owner)."""
    values = {**deal_values(state), "level": str(event.level)}
    if event.reassigned_to:
        return REASSIGNMENT.render({**values, "reassigned_to": event.reassigned_to})
    return ESCALATION.render(values)


def handoff_text(state: DealState, event: HandedOff) -> MessageText:
    """The message to the deal's new owner; `state` is the deal after `event` (the new owner is
    already its owner)."""
    values = {
        **deal_values(state),
        "team": _first(event.team),
        "from_owner": _first(event.from_owner),
        "reason": _first(event.reason),
    }
    return HANDOFF.render(values)
