"""The replay corpus: histories recorded by earlier code must replay against the current code.

A change to workflow code that would break running deals fails here, in CI, instead of in
production. To change behaviour safely, guard the new commands with `workflow.patched(...)`
(shown below) and record a history of the new behaviour with `python -m tests.replay.record`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.event_log import EventLogActivities
from audit.history import fetch_deal
from audit.replay import replay
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.commands import REVISION, DealInput
from tests.replay.variants import DealWithPatchedPause, DealWithUnguardedPause
from tests.support import TESTS
from worker.settings import Settings
from workflows.cadence import FollowUpCadence

CORPUS = sorted((TESTS / "replay" / "histories").glob("*.json"))
BEHAVIOURS = {
    "normal-path",
    "skips",
    "back-moves",
    "lost",
    "reminders-escalations",
    "cadence-reply",
    "continue-as-new",
    "migration",
    "follow-ons",
    "holidays",
    "handoffs",
}
# the scenarios that recorded a FollowUpCadence child too (the deal launches one only once its
# first touch is due)
WITH_CADENCE = {"normal-path", "skips", "reminders-escalations", "cadence-reply", "migration", "holidays"}


def _load(path: Path) -> WorkflowHistory:
    data = json.loads(path.read_text())
    return WorkflowHistory.from_json(data["workflow_id"], data["history"])


def _deals() -> list[WorkflowHistory]:
    return [h for h in map(_load, CORPUS) if h.workflow_id.startswith("deal-")]


def _scenario(path: Path) -> str:
    return str(json.loads(path.read_text())["scenario"])


@pytest.mark.unit
def test_corpus_covers_every_behaviour() -> None:
    assert {_scenario(p) for p in CORPUS} == BEHAVIOURS
    runs = [p for p in CORPUS if p.name.startswith("continue-as-new--deal-")]
    assert len(runs) == 2, "the continue-as-new scenario holds two runs of the deal"
    assert {_scenario(p) for p in CORPUS if "--cadence-" in p.name} == WITH_CADENCE


@pytest.mark.unit
def test_corpus_holds_histories_of_the_current_revision_only() -> None:
    """The deal histories are of the revision this code runs (domain.commands.REVISION): a new
    revision is recorded when it is introduced, and a retired one's histories go with its code
    (docs/revisions.md)."""
    convert = pydantic_data_converter.payload_converter
    revisions = set()
    for history in _deals():
        started = history.events[0].workflow_execution_started_event_attributes
        revisions.add(convert.from_payloads(started.input.payloads, [DealInput])[0].revision)
    assert revisions == {REVISION}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.unit
async def test_recorded_history_replays_against_current_code(path: Path) -> None:
    [result] = await replay([_load(path)])
    assert result.ok, result.error


# --- changing workflow code safely --------------------------------------------------------------


def _replayer(deal: type) -> Replayer:
    return Replayer(workflows=[deal, FollowUpCadence], data_converter=pydantic_data_converter)


async def _failures(deal: type, histories: list[WorkflowHistory]) -> list[Exception]:
    replayer = _replayer(deal)
    results = [await replayer.replay_workflow(h, raise_on_replay_failure=False) for h in histories]
    return [r.replay_failure for r in results if r.replay_failure is not None]


@pytest.mark.unit
async def test_unguarded_change_is_caught_by_replay() -> None:
    failures = await _failures(DealWithUnguardedPause, _deals())
    assert len(failures) == len(_deals())
    assert all("Nondeterminism" in type(f).__name__ or "nondetermin" in str(f).lower() for f in failures)


async def test_patched_change_replays_old_and_new_histories(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, database_url: str, deployed: dict[str, PinnedDefinition]
) -> None:
    assert await _failures(DealWithPatchedPause, _deals()) == []
    queue = f"patched-{uuid.uuid4().hex[:6]}"
    client = DealflowClient(temporal_env.client, pool, Settings(database_url=database_url, task_queue=queue))
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[DealWithPatchedPause],
        activities=[EventLogActivities(pool).append_events],
    ):
        deal = f"patched-{uuid.uuid4().hex[:8]}"
        await client.start_deal("three-phase", deal, "pat")
        await client.lose(deal, "price", actor="pat")
        await temporal_env.client.get_workflow_handle(f"deal-{deal}").result()
    [new] = await fetch_deal(temporal_env.client, deal)
    # the patch is recorded once (a proposal's local activity would leave a marker of its own)
    markers = [e.marker_recorded_event_attributes for e in new.events if e.HasField("marker_recorded_event_attributes")]
    patches = [json.loads(m.details["patch-data"].payloads[0].data) for m in markers if m.marker_name == "core_patch"]
    assert patches == [{"id": "pause-before-append", "deprecated": False}]
    await _replayer(DealWithPatchedPause).replay_workflow(new)
    with pytest.raises(Exception, match=r"(?i)nondetermin"):
        await _replayer(DealWithUnguardedPause).replay_workflow(new)
