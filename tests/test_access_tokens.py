"""`dealflow access token create | list | revoke` through the real CLI, and a token made there
signing in over HTTP until it is revoked."""

from __future__ import annotations

from client.api import DealflowClient
from tests.support import dealflow
from tests.web_support import app_over, http, policy


async def test_tokens_are_made_listed_and_revoked_from_the_command_line(
    cli_env: dict[str, str], client: DealflowClient
) -> None:
    env = cli_env | {"DEALFLOW_IDENTITIES": "rita=rep:east,ada=auditor"}
    made = await dealflow(env, "access", "token", "create", "rita", "--expires", "30d", "--as", "admin", "--json")
    assert made.code == 0, made.err
    token, token_id = made.json()["token"], made.json()["token_id"]
    assert token.startswith(f"dft_{token_id}_") and made.json()["expires_at"]

    listed = await dealflow(env, "access", "token", "list", "--json")
    row = next(r for r in listed.json() if r["token_id"] == token_id)
    assert row["identity"] == "rita" and row["created_by"] == "admin"
    assert token.removeprefix(f"dft_{token_id}_") not in listed.out, "a listing never shows a secret"

    app = app_over(client, policy())
    async with http(app, token) as api:
        assert (await api.get("/api/v1/me")).json()["name"] == "rita"
        revoked = await dealflow(env, "access", "token", "revoke", token_id)
        assert revoked.code == 0 and f"token {token_id} of rita revoked" in revoked.out
        assert (await api.get("/api/v1/me")).status_code == 401

    stranger = await dealflow(env, "access", "token", "create", "mallory")
    assert stranger.code == 1 and "'mallory' is not an identity of the access configuration" in stranger.err
    unknown = await dealflow(env, "access", "token", "revoke", "nosuchid")
    assert unknown.code == 1 and "no token 'nosuchid'" in unknown.err
    for bad, why in [("yesterday", "expected a span such as 30d"), ("2020-01-01", "is in the past")]:
        wrong = await dealflow(env, "access", "token", "create", "rita", "--expires", bad)
        assert wrong.code == 2 and why in wrong.err, wrong.err
