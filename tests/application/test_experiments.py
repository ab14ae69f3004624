"""Process experiments: stable weighted assignment, the registry's refusals, and the comparison
reading the assignments."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from client.api import DealflowClient
from definitions.experiment import Arm, Experiment, assign, load_experiment
from definitions.loader import DefinitionError, load_file
from domain.events import DealStarted
from tests.support import wait_for
from tests.support.cli import dealflow


@pytest.mark.unit
def test_assignment_is_stable_and_follows_the_weights() -> None:
    exp = Experiment(experiment="e1", process="p", arms=[Arm(version="a", weight=1), Arm(version="b", weight=3)])
    ids = [f"deal-{n}" for n in range(20000)]
    first = [assign(exp, i) for i in ids]
    assert first == [assign(exp, i) for i in ids], "the same deal id always gets the same arm"
    share_b = first.count("b") / len(first)
    assert 0.735 < share_b < 0.765, share_b
    # another experiment splits the same ids independently of this one
    other = Experiment(experiment="e2", process="p", arms=[Arm(version="a"), Arm(version="b")])
    agree = sum(assign(other, i) == "b" and f == "b" for i, f in zip(ids, first, strict=True)) / len(ids)
    assert 0.35 < agree < 0.40, agree  # 0.5 x 0.75 if independent


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("experiment: x\nprocess: p\narms:\n  - {version: a}\n", "arms: List should have at least 2 items"),
        (
            "experiment: x\nprocess: p\narms:\n  - {version: a}\n  - {version: a}\n",
            "each arm must be a different version",
        ),
        ("experiment: x\nprocess: p\narms:\n  - {version: a, weight: 0}\n  - {version: b}\n", "arms[0].weight"),
        ("experiment: X y\nprocess: p\narms: [{version: a}, {version: b}]\n", "experiment: String should match"),
        ("experiment: x\nprocess: p\narms: [{version: a}, {version: b}]\nsplit: 50\n", "unknown field 'split'"),
        ("experiment: x\narms: [{version: a}, {version: b}]\n", "process: Field required"),
        ("- just a list\n", "expected a mapping"),
        ("experiment: [x\n", "not valid YAML"),
    ],
)
def test_broken_experiment_files_are_refused_with_the_reason(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as err:
        load_experiment(path)
    assert problem in str(err.value) and str(path) in str(err.value)


async def test_an_experiment_splits_new_deals_and_the_comparison_reads_it(
    client: DealflowClient,
    pool: asyncpg.Pool,
    cli_env: dict[str, str],
    orders: tuple[Path, Path, str],
    tmp_path: Path,
) -> None:
    v1_path, v2_path, name = orders
    for path in (v1_path, v2_path):
        assert (await dealflow(cli_env, "definitions", "deploy", str(path))).code == 0
    v1, v2 = load_file(v1_path).version, load_file(v2_path).version
    exp_name = f"split-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "experiment.yaml"
    spec.write_text(
        f"experiment: {exp_name}\nprocess: {name}\ndescription: does the new discovery convert better?\n"
        f"arms:\n  - {{version: {v1}, weight: 1}}\n  - {{version: {v2}, weight: 1}}\n"
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(f"experiment: other-{exp_name}\nprocess: {name}\narms: [{{version: {v1}}}, {{version: nope}}]\n")
    refused = await dealflow(cli_env, "experiments", "start", str(unknown))
    assert refused.code == 1 and f"nope: not deployed versions of {name}" in refused.err

    started = await dealflow(cli_env, "experiments", "start", str(spec), "--as", "olga")
    assert started.code == 0 and f"experiment {exp_name} running on {name}" in started.out, started.err
    second = tmp_path / "second.yaml"
    second.write_text(f"experiment: again-{exp_name}\nprocess: {name}\narms: [{{version: {v1}}}, {{version: {v2}}}]\n")
    busy = await dealflow(cli_env, "experiments", "start", str(second))
    assert busy.code == 1 and f"experiment {exp_name!r} is already running on {name}; stop it first" in busy.err

    record = await client.experiment(exp_name)
    ids = [f"exp-{uuid.uuid4().hex[:8]}" for _ in range(40)]
    for deal_id in ids:
        await client.start_deal(name, deal_id, "rita")
    pinned_id = f"exp-pinned-{uuid.uuid4().hex[:6]}"
    await client.start_deal(name, pinned_id, "rita", version=v1)  # a pinned start is not part of it

    for deal_id in ids:
        started_event = (await client.events(deal_id))[0]
        assert isinstance(started_event, DealStarted)
        assert (started_event.version, started_event.experiment) == (assign(record.experiment, deal_id), exp_name)
    assert (await client.events(pinned_id))[0].experiment is None  # type: ignore[union-attr]

    async def projected() -> bool:
        n = await pool.fetchval("SELECT count(*) FROM deals WHERE experiment = $1", exp_name)
        return bool(n == len(ids))

    await wait_for(projected)
    expected = {v: sum(assign(record.experiment, i) == v for i in ids) for v in (v1, v2)}
    assert min(expected.values()) > 0
    shown = json.loads((await dealflow(cli_env, "experiments", "show", exp_name, "--json")).out)
    assert {a["version"]: a["deals"] for a in shown["arms"]} == expected
    assert shown["running"] and shown["started_by"] == "olga"

    compared = await dealflow(cli_env, "metrics", "compare", "--experiment", exp_name, "--json")
    assert compared.code == 0, compared.err
    comparison = json.loads(compared.out)["comparisons"][0]
    assert comparison["a"] == f"{name}@{v1}" and comparison["b"] == f"{name}@{v2}"
    assert tuple(comparison["deals"]) == (expected[v1], expected[v2])  # the pinned deal is not counted
    assert "not enough deals yet" in comparison["verdict"]
    table = await dealflow(cli_env, "metrics", "compare", "--experiment", exp_name)
    assert f"experiment {exp_name}:" in table.out
    both = await dealflow(cli_env, "metrics", "compare", f"{name}@{v1}", f"{name}@{v2}", "--experiment", exp_name)
    assert both.code == 2 and "metrics compare: give either two versions or --experiment, not both" in both.err

    stopped = await dealflow(cli_env, "experiments", "stop", exp_name, "--as", "olga")
    assert stopped.code == 0
    after = f"exp-after-{uuid.uuid4().hex[:6]}"
    await client.start_deal(name, after, "rita")
    first = (await client.events(after))[0]
    assert isinstance(first, DealStarted) and (first.version, first.experiment) == (v2, None)
    again = await dealflow(cli_env, "experiments", "stop", exp_name)
    assert again.code == 1 and "has already stopped" in again.err
    listed = json.loads((await dealflow(cli_env, "experiments", "list", "--json")).out)
    mine = next(e for e in listed if e["experiment"] == exp_name)
    assert not mine["running"] and mine["stopped_by"] == "olga"
