"""The `dealflow` CLI end to end, as a separate process, against the dev server and PostgreSQL.

The worker runs inside the test process, so the CLI is awaited as an asyncio subprocess: a
blocking call would stop the worker from serving the deal the CLI is talking to.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.support import ROOT, TESTS, new_deal_id
from tests.support.cli import DEALFLOW, Run, dealflow


async def test_held_out_definition_through_the_cli(cli_env: dict[str, str], tmp_path: Path) -> None:
    """A definition the project does not ship: five stages, Norwegian titles, exit criteria."""
    source = (TESTS / "processes" / "fem-trinn.yaml").read_text()
    path = tmp_path / "salg.yaml"
    path.write_text(source.replace("name: fem-trinn", "name: salg-cli"))
    deployed = await dealflow(cli_env, "definitions", "deploy", str(path), "--as", "ops-olga")
    assert deployed.code == 0, deployed.err
    assert "salg-cli@" in deployed.out and "deployed: 5 stages, by ops-olga" in deployed.out
    again = await dealflow(cli_env, "definitions", "deploy", str(path))
    assert again.code == 0 and "already deployed (no change)" in again.out
    listed = await dealflow(cli_env, "definitions", "list", "--json")
    assert [(d["stages"], d["deployed_by"]) for d in listed.json() if d["name"] == "salg-cli"] == [(5, "ops-olga")]

    deal = new_deal_id("cli")
    started = await dealflow(
        cli_env,
        "deal",
        "start",
        "--process",
        "salg-cli",
        "--deal-id",
        deal,
        "--owner",
        "kari",
        "--value",
        "25000",
        "--field",
        "customer=Fjord AS",
    )
    assert started.code == 0, started.err
    assert "at stage kartlegging" in started.out

    refused = await dealflow(
        cli_env, "deal", "complete", deal, "--stage", "kartlegging", "--as", "kari", "--fact", "beslutningstaker=Ola"
    )
    assert refused.code == 1 and refused.out == ""
    assert "missing_facts" in refused.err and "budsjett" in refused.err and "Hvilket budsjett" in refused.err

    status = await dealflow(cli_env, "deal", "status", deal, "--json")
    data = status.json()
    assert isinstance(data, dict)
    assert data["stage"] == "kartlegging" and data["last_seq"] == 2 and data["fields"] == {"customer": "Fjord AS"}
    assert [m["fact"] for m in data["missing_facts"]] == ["beslutningstaker", "budsjett"]

    done = await dealflow(
        cli_env,
        "deal",
        "complete",
        deal,
        "--stage",
        "kartlegging",
        "--as",
        "kari",
        "--fact",
        "beslutningstaker=Ola",
        "--fact",
        "budsjett=25000",
        "--request-id",
        "k1",
        "--json",
    )
    assert done.code == 0, done.err
    assert done.json() == {
        "deal_id": deal,
        "request_id": "k1",
        "status": "open",
        "stage": "behov",
        "first_seq": 3,
        "last_seq": 4,
    }
    repeat = await dealflow(
        cli_env,
        "deal",
        "complete",
        deal,
        "--stage",
        "kartlegging",
        "--as",
        "kari",
        "--fact",
        "beslutningstaker=Ola",
        "--fact",
        "budsjett=25000",
        "--request-id",
        "k1",
        "--json",
    )
    assert repeat.json() == done.json()

    no_reason = await dealflow(cli_env, "deal", "move", deal, "--to", "innvendinger", "--as", "kari")
    assert no_reason.code == 1 and "reason_required" in no_reason.err
    moved = await dealflow(
        cli_env,
        "deal",
        "move",
        deal,
        "--to",
        "innvendinger",
        "--as",
        "kari",
        "--reason",
        "kunden har allerede sett demo",
    )
    assert moved.code == 0 and "stage innvendinger" in moved.out

    # `deal list` reads the projection, which trails the deal by up to its flush window
    for _ in range(50):
        listed_deals = await dealflow(
            cli_env, "deal", "list", "--stage", "innvendinger", "--process", "salg-cli", "--json"
        )
        if listed_deals.json():
            break
        await asyncio.sleep(0.2)
    assert [d["deal_id"] for d in listed_deals.json()] == [deal]

    bad_reason = await dealflow(cli_env, "deal", "lose", deal, "--reason", "kjedelig", "--as", "kari")
    assert bad_reason.code == 1 and "unknown_reason" in bad_reason.err and "konkurrent" in bad_reason.err
    lost = await dealflow(cli_env, "deal", "lose", deal, "--reason", "konkurrent", "--as", "kari", "--note", "valgte X")
    assert lost.code == 0 and "lost" in lost.out

    events = await dealflow(cli_env, "deal", "events", deal, "--json")
    types = [e["type"] for e in events.json()]
    assert types == [
        "DealStarted",
        "StageEntered",
        "StageCompleted",
        "StageEntered",
        "StageSkipped",
        "StageEntered",
        "DealLost",
    ]
    final = await dealflow(cli_env, "deal", "status", deal)
    assert "status: lost (finished)" in final.out


async def test_win_through_the_cli(cli_env: dict[str, str], deployed: object) -> None:
    deal = new_deal_id("cliwin")
    assert (
        await dealflow(cli_env, "deal", "start", "--process", "nine-stage", "--deal-id", deal, "--owner", "ivar")
    ).code == 0
    for stage in ["s1", "s2", "s3", "s4", "s5"]:
        assert (await dealflow(cli_env, "deal", "complete", deal, "--stage", stage, "--as", "ivar")).code == 0
    won = await dealflow(cli_env, "deal", "win", deal, "--as", "ivar", "--json")
    assert won.code == 0, won.err
    assert won.json()["status"] == "won" and won.json()["stage"] == "s8"


async def test_a_currency_through_the_cli(cli_env: dict[str, str], deployed: object) -> None:
    deal = new_deal_id("clicur")
    start = ["deal", "start", "--process", "abroad", "--deal-id", deal, "--owner", "ivar"]
    assert (await dealflow(cli_env, *start)).code == 0
    asks = await dealflow(cli_env, "deal", "status", deal, "--min-seq", "2")
    assert "  --fact currency=<currency>  Which currency will they pay in?" in asks.out
    complete = ["deal", "complete", deal, "--stage", "qualify", "--as", "ivar", "--fact", "seats=2", "--fact"]
    bad = await dealflow(cli_env, *complete, "currency=ABC")
    assert (bad.code, bad.out) == (1, "")
    assert "invalid_fact" in bad.err and "currency: ABC is not an ISO 4217 currency code" in bad.err
    good = await dealflow(cli_env, *complete, "currency=sek", "--json")
    assert good.code == 0, good.err
    seq = str(good.json()["last_seq"])
    status = await dealflow(cli_env, "deal", "status", deal, "--json", "--min-seq", seq)
    assert status.json()["facts"]["qualify"] == {"currency": "SEK", "seats": 2}
    assert (await dealflow(cli_env, "deal", "lose", deal, "--as", "ivar", "--reason", "no-budget")).code == 0


START = ["deal", "start", "--process", "p", "--deal-id", "d", "--owner", "o"]
MIGRATE = ["definitions", "migrate", "p", "--from", "v1", "--to", "v2"]
FACT = ["deal", "complete", "x", "--stage", "s", "--as", "r", "--fact"]

# every wrong use of the command line the CLI knows of, and what it says on stderr (exit 2)
USAGE_ERRORS: list[tuple[list[str], str]] = [
    # argparse: a command, a choice, a required option
    ([], "the following arguments are required: command"),
    (["bogus"], "argument command: invalid choice: 'bogus'"),
    (["deal", "bogus"], "argument sub: invalid choice: 'bogus'"),
    (["deal", "complete", "x", "--stage", "s"], "the following arguments are required: --as"),
    (["deal", "start", "--process", "p", "--deal-id", "d"], "the following arguments are required: --owner"),
    (["definitions", "deploy"], "the following arguments are required: FILE"),
    (["report"], "the following arguments are required: --out"),
    (["deal", "list", "--status", "bogus"], "argument --status: invalid choice: 'bogus'"),
    (["deal", "reply", "x", "--as", "r", "--kind", "shouted"], "argument --kind: invalid choice: 'shouted'"),
    (["metrics", "--json", "--csv"], "argument --csv: not allowed with argument --json"),
    # values that do not read
    ([*FACT, "novalue"], "argument --fact: 'novalue' is not KEY=VALUE"),
    ([*FACT, "=v"], "argument --fact: '=v' is not KEY=VALUE"),
    ([*FACT, "a=1", "--fact", "a=2"], "argument --fact: 'a' given twice"),
    (["deal", "win", "x", "--as", "r", "--fact", "signed"], "argument --fact: 'signed' is not KEY=VALUE"),
    ([*START, "--field", "customer"], "argument --field: 'customer' is not KEY=VALUE"),
    ([*START, "--field", "a=1", "--field", "a=2"], "argument --field: 'a' given twice"),
    (
        ["deal", "start", "--process", "@v1", "--deal-id", "d", "--owner", "o"],
        "argument --process: '@v1': expected NAME or NAME@VERSION",
    ),
    ([*START, "--value", "lots"], "argument --value: 'lots' is not a number"),
    ([*START, "--value", "nan"], "argument --value: 'nan' is not a finite number"),
    ([*START, "--value", "inf"], "argument --value: 'inf' is not a finite number"),
    ([*START, "--time-scale", "2"], "argument --time-scale: 2: must be greater than 0 and at most 1"),
    ([*START, "--time-scale", "0"], "argument --time-scale: 0: must be greater than 0 and at most 1"),
    (["deal", "list", "--limit", "0"], "argument --limit: 0: must be at least 1"),
    (["deal", "list", "--limit", "many"], "argument --limit: 'many' is not a whole number"),
    (["metrics", "--since", "last tuesday"], "argument --since: 'last tuesday': expected a date or time in ISO 8601"),
    (["metrics", "--until", "soon"], "argument --until: 'soon': expected a date or time in ISO 8601"),
    (["metrics", "--as-of", "2026-13-01"], "argument --as-of: '2026-13-01': expected a date or time in ISO 8601"),
    (["metrics", "compare", "@v1", "p@v2"], "argument PROCESS@V1: '@v1': expected NAME or NAME@VERSION"),
    (["audit", "replay", "--all", "--since", "yesterday"], "argument --since: 'yesterday': expected a date"),
    (["audit", "as-of", "d1", "--at", "noon"], "argument --at: 'noon': expected a date or time in ISO 8601"),
    (["audit", "access", "--since", "then"], "argument --since: 'then': expected a date or time in ISO 8601"),
    (["audit", "access", "--limit", "-3"], "argument --limit: -3: must be at least 1"),
    (["definitions", "show", "@v1"], "argument NAME[@VERSION]: '@v1': expected NAME or NAME@VERSION"),
    ([*MIGRATE, "--map", "old"], "argument --map: 'old' is not KEY=VALUE"),
    ([*MIGRATE, "--map", "a=b", "--map", "a=c"], "argument --map: 'a' given twice"),
    (["demo", "--deals", "0"], "argument --deals: 0: must be at least 1"),
    (["demo", "--concurrency", "-1"], "argument --concurrency: -1: must be at least 1"),
    (["dev", "--temporal-port", "70000"], "argument --temporal-port: 70000: a port is at most 65535"),
    # options that conflict, or need another
    (["metrics", "--since", "2026-03-02", "--until", "2026-03-01"], "is not before --until"),
    (["metrics", "--version", "v1"], "--version needs --process: a version belongs to one process"),
    (["metrics", "compare", "p@v1"], "metrics compare needs PROCESS@V1 PROCESS@V2, or --experiment NAME"),
    (["metrics", "compare", "p@v1", "p@v2", "--experiment", "e"], "give either two versions or --experiment, not both"),
    (["metrics", "--owner", "bo", "compare", "p@v1", "p@v2"], "metrics compare does not take --owner"),
    (["metrics", "--since", "2026-01-01", "customers"], "metrics customers does not take --since"),
    (["audit", "replay"], "audit replay: nothing to replay: name deals, --all, or --from-json FILE"),
    (["audit", "verify"], "audit verify: nothing to verify: name deals, --all, or --from-json FILE"),
    (["audit", "replay", "d1", "--all"], "audit replay: name deals or give --all, not both"),
    (["audit", "verify", "d1", "--process", "p"], "audit verify: --process and --since choose among --all; add --all"),
    (["definitions", "migrate", "p", "--from", "v1", "--to", "v1"], "--from and --to are the same version, v1"),
    (["dev", "--temporal-port", "7300", "--ui-port", "7300"], "--temporal-port and --ui-port are both 7300"),
]


async def test_usage_errors_exit_2_before_anything_connects(tmp_path: Path) -> None:
    """Through the real CLI, with servers that cannot be reached: each usage error is found before
    anything connects or starts (exit 2, not 3), named on stderr, with nothing on stdout."""
    env = {
        **os.environ,
        "DEALFLOW_HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/none",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    gate = asyncio.Semaphore(2)  # these machines have two cores

    async def run(args: list[str]) -> Run:
        async with gate:
            return await dealflow(env, *args, timeout=30)

    runs = await asyncio.gather(*(run(args) for args, _ in USAGE_ERRORS))
    wrong = [
        f"dealflow {' '.join(args)}: exit {r.code}, stdout {r.out!r}, stderr {r.err!r}"
        for (args, text), r in zip(USAGE_ERRORS, runs, strict=True)
        if (r.code, r.out) != (2, "") or text not in r.err or "Traceback" in r.err
    ]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["deal", "status", "no-such-deal"], "no deal 'no-such-deal'"),
        (["deal", "start", "--process", "ghost", "--deal-id", "g1", "--owner", "o"], "no process 'ghost' is deployed"),
        (["deal", "start", "--process", "three-phase", "--deal-id", "bad id!", "--owner", "o"], "deal_id"),
    ],
)
async def test_refusals_exit_1(cli_env: dict[str, str], deployed: object, args: list[str], text: str) -> None:
    run = await dealflow(cli_env, *args)
    assert run.code == 1 and text in run.err, run.err


async def test_broken_definition_deploy_names_file_line_and_problem(cli_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (TESTS / "processes" / "fem-trinn.yaml").read_text().replace("phase: bevise", "phase: tvile", 1)
    broken.write_text(text)
    run = await dealflow(cli_env, "definitions", "deploy", str(broken))
    line = text.splitlines().index("    phase: tvile") + 1
    assert run.code == 1
    assert f"{broken}:{line}: stages[2].phase: stage 'presentasjon' refers to unknown phase 'tvile'" in run.err
    listed = await dealflow(cli_env, "definitions", "list", "--json")
    assert all(d["source"] != broken.name for d in listed.json())


async def test_schema_and_validate_need_no_server(tmp_path: Path) -> None:
    env = {**os.environ, "DEALFLOW_HOME": str(tmp_path), "DATABASE_URL": "postgresql://x@127.0.0.1:1/none"}
    schema = await dealflow(env, "definitions", "schema")
    assert schema.code == 0 and "stages" in schema.json()["properties"]
    ok = await dealflow(env, "definitions", "validate", str(TESTS / "processes" / "nine-stage.yaml"))
    assert ok.code == 0 and "9 stages" in ok.out


async def test_unreachable_servers_exit_3_with_the_address(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEALFLOW_HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://x:secret@127.0.0.1:1/none",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    run = await dealflow(env, "deal", "list")
    assert run.code == 3
    assert "cannot connect to PostgreSQL at postgresql://x:***@127.0.0.1:1/none" in run.err
    assert "secret" not in run.err


async def test_reply_through_the_cli(cli_env: dict[str, str], deployed: object) -> None:
    deal = new_deal_id("clireply")
    assert (
        await dealflow(cli_env, "deal", "start", "--process", "chase", "--deal-id", deal, "--owner", "ivar")
    ).code == 0
    bad = await dealflow(cli_env, "deal", "reply", deal, "--as", "ivar", "--kind", "shouted")
    assert bad.code == 2 and "invalid choice" in bad.err
    replied = await dealflow(cli_env, "deal", "reply", deal, "--as", "ivar", "--note", "asked for a call", "--json")
    assert replied.code == 0, replied.err
    seq = str(replied.json()["last_seq"])
    events = (await dealflow(cli_env, "deal", "events", deal, "--min-seq", seq, "--json")).json()
    assert [(e["type"], e["kind"], e["note"]) for e in events if e["type"] == "BuyerResponded"] == [
        ("BuyerResponded", "replied", "asked for a call")
    ]


@pytest.mark.parametrize(
    ("named", "words"),
    [
        ("/etc/passwd", "template file '/etc/passwd' is an absolute path"),
        ("../home/web-secret", "template file '../home/web-secret' steps out of the definition's directory"),
        ("secret.md", "template file 'secret.md' leads outside the definition's directory (a symbolic link)"),
        ("absent.md", "template file 'absent.md' not found in the definition's directory"),
    ],
)
async def test_validate_and_deploy_refuse_a_template_file_from_outside_the_definitions_directory(
    cli_env: dict[str, str], tmp_path: Path, named: str, words: str
) -> None:
    home = Path(cli_env["DEALFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "web-secret").write_text("the-session-signing-key")
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "secret.md").symlink_to(home / "web-secret")
    name = new_deal_id("outside")
    text = (TESTS / "processes" / "fem-trinn.yaml").read_text().replace("name: fem-trinn", f"name: {name}")
    text += f"proposal_templates:\n  - {{id: tilbud, file: {named!r}}}\n"
    path = defs / "salg.yaml"
    path.write_text(text)
    line = len(text.splitlines())
    expected = f"{path}:{line}: proposal_templates[0].file: {words}"
    for command in ("validate", "deploy"):
        run = await dealflow(cli_env, "definitions", command, str(path))
        assert run.code == 1 and expected in run.err, run.err
        assert "the-session-signing-key" not in run.out + run.err and "root:" not in run.out + run.err
    listed = await dealflow(cli_env, "definitions", "list", "--json")
    assert all(d["name"] != name for d in listed.json()), "nothing was deployed"


async def test_a_deployed_definitions_source_is_its_file_name_not_a_server_path(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    name = new_deal_id("named")
    path = tmp_path / "deep" / "down" / "salg.yaml"
    path.parent.mkdir(parents=True)
    path.write_text((TESTS / "processes" / "fem-trinn.yaml").read_text().replace("name: fem-trinn", f"name: {name}"))
    assert (await dealflow(cli_env, "definitions", "deploy", str(path))).code == 0
    listed = await dealflow(cli_env, "definitions", "list", "--json")
    assert [d["source"] for d in listed.json() if d["name"] == name] == ["salg.yaml"]


async def _into_a_closed_pipe(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The CLI writing to a pipe whose reader has already gone (`dealflow ... | head`, once head has
    read its lines): every write to stdout fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = await asyncio.create_subprocess_exec(
            *DEALFLOW, *args, env=env, cwd=ROOT, stdout=write, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_closed_pipe_ends_the_output_quietly(cli_env: dict[str, str], deployed: object) -> None:
    for args in (
        ["metrics", "by-fact", "seven-stage", "presentation.approach"],
        ["definitions", "validate", str(ROOT / "definitions" / "processes" / "seven-stage.yaml")],
        ["definitions", "list"],
    ):
        code, err = await _into_a_closed_pipe(cli_env, *args)
        assert (code, err) == (141, ""), (args, err)
