"""`dealflow access token create | list | revoke` through the real CLI: who may make a token for
whom (ops for anyone, a manager for their team, no one for a role above their own, reps and
auditors never), who made it recorded, refusals recorded, and a token made there signing in over
HTTP until it is revoked."""

from __future__ import annotations

from client.api import DealflowClient
from store import access_log, tokens
from tests.support.cli import dealflow
from tests.support.web import app_over, http, policy

IDENTITIES = "rita=rep:east,ben=rep:west,mona=manager:east,olga=ops,ada=auditor"


async def test_tokens_are_made_listed_and_revoked_from_the_command_line(
    cli_env: dict[str, str], client: DealflowClient
) -> None:
    env = cli_env | {"DEALFLOW_IDENTITIES": IDENTITIES}
    made = await dealflow(env, "access", "token", "create", "rita", "--expires", "30d", "--as", "olga", "--json")
    assert made.code == 0, made.err
    token, token_id = made.json()["token"], made.json()["token_id"]
    assert token.startswith(f"dft_{token_id}_") and made.json()["expires_at"]

    listed = await dealflow(env, "access", "token", "list", "--json")
    row = next(r for r in listed.json() if r["token_id"] == token_id)
    assert row["identity"] == "rita" and row["created_by"] == "olga"
    assert token.removeprefix(f"dft_{token_id}_") not in listed.out, "a listing never shows a secret"

    app = app_over(client, policy())
    async with http(app, token) as api:
        assert (await api.get("/api/v1/me")).json()["name"] == "rita"
        revoked = await dealflow(env, "access", "token", "revoke", token_id, "--as", "olga")
        assert revoked.code == 0 and f"token {token_id} of rita revoked" in revoked.out
        assert (await api.get("/api/v1/me")).status_code == 401
    record = await tokens.get(client.pool, token_id)
    assert record is not None and record.revoked_by == "olga"

    stranger = await dealflow(env, "access", "token", "create", "mallory", "--as", "olga")
    assert stranger.code == 1 and "'mallory' is not an identity of the access configuration" in stranger.err
    unknown = await dealflow(env, "access", "token", "revoke", "nosuchid", "--as", "olga")
    assert unknown.code == 1 and "no token 'nosuchid'" in unknown.err
    for bad, why in [("yesterday", "expected a span such as 30d"), ("2020-01-01", "is in the past")]:
        wrong = await dealflow(env, "access", "token", "create", "rita", "--expires", bad, "--as", "olga")
        assert wrong.code == 2 and why in wrong.err, wrong.err


async def test_only_ops_and_a_manager_for_their_team_make_tokens(
    cli_env: dict[str, str], client: DealflowClient
) -> None:
    env = cli_env | {"DEALFLOW_IDENTITIES": IDENTITIES}
    env.pop("DEALFLOW_USER", None)
    before = {t.token_id for t in await tokens.list_all(client.pool)}
    refused = [
        (["olga", "--as", "rita"], "rita is rep: only ops and managers make tokens"),
        (["rita", "--as", "rita"], "rita is rep: only ops and managers make tokens"),
        (["rita", "--as", "ada"], "ada is auditor: only ops and managers make tokens"),
        (["olga", "--as", "mona"], "olga is ops, a role above mona's (manager)"),
        (["ben", "--as", "mona"], "mona manages team east; ben is not in it (west)"),
        (["ada", "--as", "mona"], "mona manages team east; ada is not in it (no team)"),
        (["rita", "--as", "admin"], "'admin' is not an identity of the access configuration"),
        (["rita"], "say who makes the token: --as NAME"),
    ]
    for args, why in refused:
        answer = await dealflow(env, "access", "token", "create", *args)
        assert answer.code == 1 and why in answer.err, (args, answer.err)
    assert {t.token_id for t in await tokens.list_all(client.pool)} == before, "no refusal made a token"
    recorded = [r for r in await access_log.read(client.pool, limit=50) if r.action == "make tokens"]
    assert {("rita", "olga"), ("mona", "olga"), ("mona", "ben"), ("ada", "rita")} <= {
        (r.actor, r.target) for r in recorded
    }

    for args, maker in [(["rita", "--as", "mona"], "mona"), (["mona", "--as", "mona"], "mona"), (["olga"], "olga")]:
        run_env = env | {"DEALFLOW_USER": "olga"} if maker == "olga" and "--as" not in args else env
        made = await dealflow(run_env, "access", "token", "create", *args, "--json")
        assert made.code == 0, (args, made.err)
        assert made.json()["created_by"] == maker

    # a rep revokes their own token; no one else's
    own = (await dealflow(env, "access", "token", "create", "rita", "--as", "olga", "--json")).json()["token_id"]
    theirs = (await dealflow(env, "access", "token", "create", "ben", "--as", "olga", "--json")).json()["token_id"]
    not_hers = await dealflow(env, "access", "token", "revoke", theirs, "--as", "rita")
    assert not_hers.code == 1 and "rita is rep: only ops and managers revoke tokens" in not_hers.err
    assert (await dealflow(env, "access", "token", "revoke", own, "--as", "rita")).code == 0
