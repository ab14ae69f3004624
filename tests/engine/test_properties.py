"""Bad input, tried systematically (hypothesis): definitions and update payloads, valid and
broken. A broken one is always refused with a clear error; nothing else ever escapes, and no
payload makes a deal's workflow task fail or get stuck."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError

from client.api import DealflowClient
from definitions.loader import DefinitionError, load_text, parse
from definitions.model import ProcessDefinition
from domain import decide
from domain.commands import CompleteStage, LoseDeal, MoveStage, StartDeal, WinDeal, workflow_id
from domain.state import fold
from tests.support import ROOT

SHIPPED = ROOT / "definitions" / "processes" / "seven-stage.yaml"
VALID: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(VALID) if p]


@st.composite
def mutated_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """The shipped seven-stage definition with one to four places changed, removed or added."""
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "delete":
                del parent[last]
            elif action == "replace":
                parent[last] = draw(json_values)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this place
    return data


@pytest.mark.unit
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_definitions())
def test_a_changed_definition_is_valid_or_refused_with_reasons(data: dict[str, Any]) -> None:
    try:
        definition = parse(data, source="mutated.yaml")
    except DefinitionError as err:
        assert err.problems, "a refusal names at least one problem"
        for problem in err.problems:
            assert problem.message and str(problem).startswith("mutated.yaml")
        return
    assert isinstance(definition, ProcessDefinition)
    # what validates also round-trips: its normal form loads to the same definition
    again = parse(json.loads(definition.model_dump_json()), source="again")
    assert again == definition


@pytest.mark.unit
@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_a_definition_file_is_refused_cleanly(text: str) -> None:
    try:
        load_text(text, source="any.yaml")
    except DefinitionError as err:
        assert all(str(p).startswith("any.yaml") for p in err.problems)


D = parse(copy.deepcopy(VALID))
STAGES = [s.id for s in D.stages]
# any text the log can hold (domain.limits; tests/application/test_log_integrity.py tries the text it cannot)
storable = st.characters(blacklist_characters="\x00", codec="utf-8")  # UTF-8 has no lone surrogates
stage_names = st.one_of(st.sampled_from(STAGES), st.text(storable, min_size=1, max_size=10))
fact_maps = st.dictionaries(
    st.one_of(
        st.sampled_from([f.fact for s in D.stages for f in s.exit_criteria]), st.text(storable, min_size=1, max_size=8)
    ),
    st.one_of(
        st.text(storable, max_size=10),
        st.integers(min_value=-(2**53), max_value=2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    ),
    max_size=5,
)
commands = st.one_of(
    st.builds(CompleteStage, request_id=st.uuids().map(str), actor=st.just("rep"), stage=stage_names, facts=fact_maps),
    st.builds(
        MoveStage,
        request_id=st.uuids().map(str),
        actor=st.just("rep"),
        to=stage_names,
        reason=st.none() | st.text(storable),
    ),
    st.builds(WinDeal, request_id=st.uuids().map(str), actor=st.just("rep"), facts=fact_maps),
    st.builds(
        LoseDeal,
        request_id=st.uuids().map(str),
        actor=st.just("rep"),
        reason=st.sampled_from([*(D.outcomes.lost.reasons if D.outcomes.lost else []), "made-up"]),
    ),
)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=25))
def test_any_sequence_of_commands_is_decided_or_refused(sequence: list[Any]) -> None:
    """Against the pure decisions the workflow runs: each command is recorded or refused with a
    code, and the events always fold."""
    events = decide.start(StartDeal(deal_id="p-1", owner="rep", actor="rep"), D, "v", "h", T0)
    state = fold(events)
    at = T0
    for cmd in sequence:
        at += timedelta(hours=1)
        decisions: dict[type, Any] = {
            CompleteStage: decide.complete,
            MoveStage: decide.move,
            WinDeal: decide.win,
            LoseDeal: decide.lose,
        }
        decision = decisions[type(cmd)]
        try:
            new = decision(state, D, cmd, at)
        except decide.Refusal as refusal:
            assert refusal.code and refusal.message
            continue
        state = fold(new, state)
        assert state.last_seq == new[-1].seq


raw_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"request_id": st.one_of(st.uuids().map(str), json_values), "actor": st.one_of(st.just("rep"), json_values)},
        optional={"stage": st.one_of(stage_names, json_values), "facts": st.one_of(fact_maps, json_values)},
    ),
)


@pytest.fixture
async def live_deal(client: DealflowClient, deployed: Any) -> str:
    deal = f"prop-{uuid.uuid4().hex[:8]}"
    await client.start_deal("seven-stage", deal, "rep")
    return deal


async def test_raw_update_payloads_never_fail_a_workflow_task(
    client: DealflowClient, temporal_client: Client, live_deal: str
) -> None:
    """Payloads from any client, of any shape, to every update: each is answered (accepted or
    refused); afterwards the history has no failed workflow task and the deal still answers."""
    handle = temporal_client.get_workflow_handle(workflow_id(live_deal))
    updates = ["complete_stage", "move", "win", "lose", "record_response", "migrate"]
    outcomes = {"accepted": 0, "refused": 0}

    # hypothesis draws the payloads; sending them needs the test's event loop, so they are
    # collected first and sent after (each failure names its payload)
    drawn: list[tuple[str, Any]] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(updates), raw_payloads)
    def collect(update: str, payload: Any) -> None:
        drawn.append((update, payload))

    collect()
    for update, payload in drawn:
        try:
            await handle.execute_update(update, payload, rpc_timeout=timedelta(seconds=10))
            outcomes["accepted"] += 1
        except WorkflowUpdateFailedError:
            outcomes["refused"] += 1
        except Exception as exc:  # anything else is a defect: name the payload
            raise AssertionError(f"{update}({payload!r}) raised {exc!r}") from exc
    history = await handle.fetch_history()
    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert not failed, failed[0]
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING  # unharmed
    print(f"raw payloads: {outcomes}")
    assert outcomes["refused"] > 0
