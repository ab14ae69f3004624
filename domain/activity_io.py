"""Inputs of the activities the deal workflow calls: the contract between the deterministic
side and the side-effect side, kept here so workflow code never imports activity code."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from definitions.loader import PinnedDefinition
from definitions.model import Team
from domain.events import DealEvent
from domain.state import DealState, Status

APPEND_EVENTS = "append_events"

# Each attempt is one small transaction, one message or one document. A worker killed in the
# middle of one holds it until this timeout passes; then another worker retries it. Short
# timeouts are what make a crashed worker cost seconds, not minutes.
APPEND_TIMEOUT = timedelta(seconds=10)
SEND_TIMEOUT = timedelta(seconds=20)
PROPOSAL_TIMEOUT = timedelta(seconds=30)
# A proposal is made in a local activity, inside the workflow task that asked for it, and that
# task (with the rep's answer in it) completes only when the activity does. Past this backoff a
# failing one waits on a Temporal timer instead, so it holds a rep for about a second, not for
# the whole retry schedule.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=1)


class DealSnapshot(BaseModel):
    """One row of the current-state projection, as of `last_seq`."""

    model_config = ConfigDict(frozen=True)

    deal_id: str
    process: str
    version: str
    owner: str
    value: float | None
    status: Status
    stage: str | None
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int
    touches: int = 0

    @classmethod
    def of(cls, state: DealState) -> DealSnapshot:
        return cls(
            deal_id=state.deal_id,
            process=state.process,
            version=state.version,
            owner=state.owner,
            value=state.value,
            status=state.status,
            stage=state.stage,
            stage_entered_at=state.stage_entered_at,
            started_at=state.started_at,
            ended_at=state.ended_at,
            last_seq=state.last_seq,
            touches=state.touches,
        )


class AppendEvents(BaseModel):
    model_config = ConfigDict(frozen=True)

    deal_id: str
    events: list[DealEvent]
    snapshot: DealSnapshot
    # where in the deal's history the batch was made (the run's start and the history length),
    # logged with each row for the audit
    run_started_at: datetime | None = None
    history_length: int | None = None


class AppendReceipt(BaseModel):
    """What an append did: how many events were new. (Revision 3 appended some batches in local
    activities, whose input Temporal does not keep, and had their events echoed here:
    audit.history still reads them from the histories of that time.)"""

    model_config = ConfigDict(frozen=True)

    new: int
    events: list[DealEvent] = []


SEND_MESSAGE = "send_message"
GENERATE_PROPOSAL = "generate_proposal"


class OutgoingMessage(BaseModel):
    """One message to send through a named channel, at most once per (deal_id, effect_key).

    Touches use the key `touch/<cadence_run>/<touch_no>`, reminders `notify/<seq>`: the outbox
    table in PostgreSQL is keyed by `(deal_id, effect_key)`, so a retried or restarted send
    never sends twice.

    A message comes either written (`subject`, `body`) or, for a touch, as its template and the
    deal's values (`touch_template`, `template_values`), which the send activity renders
    (`domain.touches`): a touch that cannot be rendered then fails as that touch, before anything
    is sent or claimed. Touches scheduled before templates moved there come written.
    """

    model_config = ConfigDict(frozen=True)

    deal_id: str
    effect_key: str
    kind: str  # "touch" or "notification"
    channel: str
    recipient: str
    subject: str = ""
    body: str = ""
    cadence_run: str | None = None
    touch_no: int | None = None
    touch_template: str | None = None
    template_values: dict[str, str] = {}


class SentMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    already_sent: bool = False


class ProposalRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    deal_id: str
    version: str
    template_id: str
    template: str
    values: dict[str, str]


class ProposalDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    html_path: str
    content_hash: str


PREPARE_FOLLOW_ON = "prepare_follow_on"


class FollowOnRequest(BaseModel):
    """Which version a follow-on deal of `process` starts on (an experiment may choose it)."""

    model_config = ConfigDict(frozen=True)

    process: str
    deal_id: str


class PreparedFollowOn(BaseModel):
    model_config = ConfigDict(frozen=True)

    pinned: PinnedDefinition
    experiment: str | None = None


CHOOSE_OWNER = "choose_owner"
CHOOSE_TIMEOUT = timedelta(seconds=10)


class OwnerRequest(BaseModel):
    """Which member of `team` a deal entering `stage` is handed to.

    `(deal_id, entry_seq)` names the stage visit: the store keeps the choice made for it, so a
    retried or repeated request gets the same member, and the rotation moves once per visit.
    """

    model_config = ConfigDict(frozen=True)

    deal_id: str
    entry_seq: int
    process: str
    stage: str
    team: Team
    from_owner: str


class OwnerChoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    owner: str
    how: str  # how the rule chose, in words (the end of the HandedOff's reason)
    repeated: bool = False  # the choice made earlier for this visit, returned again
