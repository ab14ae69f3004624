"""A definition too large for a deal to carry: what Temporal takes (measured on the dev server),
refused at validate and deploy with its size, and a start that is too large refused at once,
never left as an unknown outcome."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import app.deal_service as deal_service
from client.api import DealflowClient, OutcomeUnknown, Refused
from definitions.loader import MAX_PINNED_BYTES, DefinitionError, check_text, load_file, pin, pinned_size
from domain.commands import workflow_id
from store import registry
from tests.support import new_deal_id
from tests.support.cli import dealflow
from tests.support.web import app_over, http

KiB, MiB = 1024, 1024 * 1024


def definition(name: str) -> dict[str, object]:
    return {
        "name": name,
        "phases": [{"id": "p", "title": "Phase"}],
        "stages": [
            {"id": "a", "title": "A", "phase": "p", "probability": 0.2, "proposal_template": "offer"},
            {"id": "b", "title": "B", "phase": "p", "probability": 0.6},
        ],
        "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
        "proposal_templates": [{"id": "offer", "file": "offer.md"}],
    }


def line_with(text: str, words: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if words in line)


def write(tmp_path: Path, name: str, template_bytes: int) -> Path:
    """A definition whose proposal template has `template_bytes` bytes (lines of plain text)."""
    line = "An offer for {customer}, with every term spelt out at length.\n"
    (tmp_path / "offer.md").write_text(line * (template_bytes // len(line)) + "x" * (template_bytes % len(line)))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(definition(name), sort_keys=False))
    return path


# --- what Temporal takes --------------------------------------------------------------------


async def test_what_a_workflow_start_can_carry_measured_on_the_dev_server(temporal_client: Client) -> None:
    """The limits `definitions.loader.MAX_PINNED_BYTES` is set against: a payload up to 2 MiB is
    taken, one above is refused for its size, one above 4 MiB is refused by gRPC; each refusal is
    an answer (never sent again) that the client knows as "too large"."""
    from app.retry import lost_answer, too_large

    queue = f"size-{uuid.uuid4().hex[:8]}"  # no worker: the workflows only need to be accepted
    taken = await temporal_client.start_workflow("Nothing", "x" * (2 * MiB - 64), id=f"{queue}-a", task_queue=queue)
    await taken.terminate()
    refused = {}
    for size in (2 * MiB + 1 * KiB, 4 * MiB + 1 * KiB):
        with pytest.raises(RPCError) as caught:
            await temporal_client.start_workflow("Nothing", "x" * size, id=f"{queue}-{size}", task_queue=queue)
        refused[size] = caught.value
    blob, message = refused[2 * MiB + 1 * KiB], refused[4 * MiB + 1 * KiB]
    assert blob.status == RPCStatusCode.INVALID_ARGUMENT and "Blob data size exceeds limit" in blob.message
    assert message.status == RPCStatusCode.RESOURCE_EXHAUSTED and "larger than max" in message.message
    for exc in (blob, message):
        assert too_large(exc) and lost_answer(exc) is None
    assert 2 * MiB >= MAX_PINNED_BYTES * 8  # refused well below the server's limit


# --- validate and deploy --------------------------------------------------------------------


@pytest.mark.unit
def test_a_definition_too_large_to_carry_is_refused_with_its_size_at_the_line_of_its_largest_part(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "big", 5 * MiB)
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    [problem] = caught.value.problems
    line = line_with(path.read_text(), "file: offer.md")
    assert (problem.file, problem.line, problem.path) == (str(path), line, "proposal_templates[0].file")
    assert "the pinned definition is 5.1 MiB (5,328,630 bytes)" in problem.message  # JSON escapes the newlines
    assert "dealflow takes at most 256 KiB (Temporal refuses a start above 2 MiB)" in problem.message
    assert "the largest part is template offer.md (5.1 MiB)" in problem.message
    # the same bulk in the stages is named there
    data = definition("big") | {"proposal_templates": []}
    bulky = {"id": "a", "title": "A", "phase": "p", "probability": 0.2, "description": "y" * MiB}
    data["stages"][0] = bulky  # type: ignore[index]
    text = yaml.safe_dump(data, sort_keys=False, width=10 * MiB)
    with pytest.raises(DefinitionError) as caught:
        check_text(text, source="big.yaml")
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == ("stages", line_with(text, "stages:") + 1)
    assert "the largest part is stages (1.0 MiB)" in problem.message
    # just under the limit is taken
    fits = load_file(write(tmp_path, "fits", MAX_PINNED_BYTES - 8 * KiB))
    assert MAX_PINNED_BYTES - 8 * KiB < pinned_size(fits) <= MAX_PINNED_BYTES


async def test_deploy_refuses_it_and_stores_nothing(
    cli_env: dict[str, str], client: DealflowClient, tmp_path: Path
) -> None:
    name = f"big-{uuid.uuid4().hex[:6]}"
    path = write(tmp_path, name, 5 * MiB)
    for args in (["validate", str(path)], ["deploy", str(path)], ["deploy", "--dry-run", str(path)]):
        run = await dealflow(cli_env, "definitions", *args)
        assert run.code == 1, (args, run.out, run.err)
        line = line_with(path.read_text(), "file: offer.md")
        assert f"{path}:{line}: proposal_templates[0].file: the pinned definition is 5.1 MiB" in run.err, run.err
    async with http(app_over(client), **{"X-Dealflow-User": "ops"}) as api:
        body = {"filename": f"{name}.yaml", "yaml": path.read_text(), "templates": {"offer.md": "x" * 5 * MiB}}
        answer = await api.post("/api/v1/definitions", json=body)
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_definition")
    assert "the pinned definition is 5.0 MiB" in answer.json()["message"]
    assert name not in {d.name for d in await client.definitions()}


# --- starting a deal ------------------------------------------------------------------------


async def _deploy_unchecked(pool: asyncpg.Pool, tmp_path: Path, template_bytes: int) -> str:
    """A version stored without the loader's size check, as one deployed before it existed."""
    name = f"big-{uuid.uuid4().hex[:6]}"
    small = load_file(write(tmp_path, name, 1 * KiB))
    await registry.deploy(pool, pin(small.definition, {"offer": "x" * template_bytes}), deployed_by="tests")
    return name


async def _absent(c: DealflowClient, deal: str) -> None:
    with pytest.raises(RPCError) as caught:
        await c.temporal.get_workflow_handle(workflow_id(deal)).describe()
    assert caught.value.status == RPCStatusCode.NOT_FOUND


async def test_a_deal_on_a_definition_just_under_the_limit_starts(client: DealflowClient, tmp_path: Path) -> None:
    name = f"fits-{uuid.uuid4().hex[:6]}"
    await client.deploy(write(tmp_path, name, MAX_PINNED_BYTES - 8 * KiB), deployed_by="ops")
    deal = new_deal_id("fits")
    started = await client.start_deal(name, deal, "olga", fields={"customer": "Fjord AS"})
    assert started.stage == "a" and (await client.status(deal)).state.stage == "a"


async def test_a_start_too_large_is_refused_never_outcome_unknown(
    client: DealflowClient, pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await _deploy_unchecked(pool, tmp_path, 5 * MiB)
    deal = new_deal_id("big")
    with pytest.raises(Refused) as caught:
        await client.start_deal(name, deal, "olga")
    assert caught.value.code == "definition_too_large"
    assert "is 5.0 MiB (" in caught.value.message and "at most 256 KiB" in caught.value.message
    await _absent(client, deal)
    # and were the check not there, Temporal's own refusals are refusals too, at once: above its
    # blob limit (2 MiB) and above gRPC's message limit (4 MiB)
    monkeypatch.setattr(deal_service, "MAX_PINNED_BYTES", 64 * MiB)  # where start_deal checks it
    for size in (3 * MiB, 5 * MiB):
        name = await _deploy_unchecked(pool, tmp_path, size)
        deal = new_deal_id("big")
        try:
            await client.start_deal(name, deal, "olga")
        except OutcomeUnknown as exc:
            raise AssertionError(f"a start of {size} bytes was left unknown: {exc}") from None
        except Refused as exc:
            assert exc.code == "start_too_large" and "more than Temporal takes" in exc.message, exc.message
        else:
            raise AssertionError(f"a start of {size} bytes was taken")
        await _absent(client, deal)
