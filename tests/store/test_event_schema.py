"""Events outlive the code that wrote them: every payload carries its schema version, and older
shapes are read through upcasters, from the log, from Temporal payloads and in the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic import ValidationError

from audit.verify import LogRow, check_chain
from definitions.loader import load_file, shipped
from domain import events
from domain.commands import REVISION, DealInput
from domain.events import EVENT_ADAPTER, DealLost, DealStarted, StageEntered, decode_stored
from store import event_log
from store.event_log import GENESIS, canonical_document, chain_hash
from tests.support import new_deal_id

AT = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
OLD_LOST = {"type": "DealLost", "seq": 3, "at": AT.isoformat(), "actor": "ola", "stage": "demo", "why": "price"}


@pytest.fixture
def lost_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if DealLost had renamed `why` to `reason` in version 2 (its upcaster registered)."""

    def rename(payload: dict[str, object]) -> dict[str, object]:
        payload = dict(payload)
        payload["reason"] = payload.pop("why")
        return payload

    monkeypatch.setattr(DealLost, "VERSION", 2)
    monkeypatch.setitem(events.UPCASTERS, ("DealLost", 1), rename)


@pytest.mark.unit
def test_every_payload_carries_its_schema_version() -> None:
    lost = DealLost(seq=3, at=AT, actor="ola", reason="price")
    payload = lost.model_dump(mode="json")
    assert payload["schema_version"] == 1
    assert EVENT_ADAPTER.validate_python(payload) == lost


@pytest.mark.unit
def test_a_payload_written_before_versions_existed_reads_as_version_one() -> None:
    payload = {"type": "StageEntered", "seq": 2, "at": AT.isoformat(), "actor": "ola", "stage": "demo", "via": "next"}
    event = decode_stored(json.dumps(payload))
    assert event == StageEntered(seq=2, at=AT, actor="ola", stage="demo", via="next")


@pytest.mark.usefixtures("lost_v2")
@pytest.mark.unit
def test_an_older_shape_is_upcast_and_the_current_one_is_read_as_it_is() -> None:
    expected = DealLost(seq=3, at=AT, actor="ola", stage="demo", reason="price")
    assert decode_stored(json.dumps(OLD_LOST)) == expected  # stored before versions existed
    assert EVENT_ADAPTER.validate_python({**OLD_LOST, "schema_version": 1}) == expected
    current = expected.model_dump(mode="json")
    assert current["schema_version"] == 2
    assert EVENT_ADAPTER.validate_python(current) == expected


@pytest.mark.usefixtures("lost_v2")
@pytest.mark.unit
def test_carried_events_of_an_older_shape_decode_in_a_workflow_input() -> None:
    """A run that continued as new before the change carries old payloads in its input."""
    pinned = load_file(shipped()[0])
    started = DealStarted(seq=1, at=AT, actor="ola", deal_id="d", process="p", version="v", content_hash="h", owner="o")
    carried = [started.model_dump(mode="json"), {**OLD_LOST, "seq": 2, "schema_version": 1}]
    raw = {"start": {"deal_id": "d", "owner": "o", "actor": "o"}, "pinned": pinned.model_dump(mode="json")}
    decoded = DealInput.model_validate_json(json.dumps({**raw, "carried_events": carried, "revision": REVISION}))
    assert decoded.carried_events == [started, DealLost(seq=2, at=AT, actor="ola", stage="demo", reason="price")]


@pytest.mark.unit
def test_a_payload_newer_than_the_code_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="DealLost of schema version 9 is newer than this code reads"):
        EVENT_ADAPTER.validate_python({**OLD_LOST, "reason": "price", "schema_version": 9})
    with pytest.raises(ValidationError, match="schema_version 'two' is not a version"):
        EVENT_ADAPTER.validate_python({**OLD_LOST, "schema_version": "two"})


@pytest.mark.usefixtures("lost_v2")
async def test_a_logged_row_of_an_older_shape_reads_and_its_chain_still_verifies(pool: asyncpg.Pool) -> None:
    deal = new_deal_id("old-shape")
    documents = [
        {"type": "DealStarted", "seq": 1, "at": AT.isoformat(), "actor": "ola", "deal_id": deal, "process": "p"}
        | {"version": "v", "content_hash": "h", "owner": "ola", "value": None, "fields": {}},
        {**OLD_LOST, "seq": 2},
    ]
    prev, rows = GENESIS, []
    for doc in documents:
        digest = chain_hash(prev, canonical_document(doc))
        rows.append((deal, doc["seq"], doc["type"], AT, "ola", None, None, "p", "v", json.dumps(doc), prev, digest))
        prev = digest
    await pool.executemany(
        "INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, stage, request_id, process, version,"
        " payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)",
        rows,
    )
    read = await event_log.read(pool, deal)
    assert read[1] == DealLost(seq=2, at=AT, actor="ola", stage="demo", reason="price")
    stored = await pool.fetch("SELECT seq, payload::text, prev_hash, hash FROM deal_events WHERE deal_id = $1", deal)
    assert check_chain([LogRow.of(r) for r in stored]) == []
