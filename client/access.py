"""Identities and roles from the access configuration, enforced by the client before it sends.

Configured by a YAML file (`$DEALFLOW_ACCESS_FILE`, else `<DEALFLOW_HOME>/access.yaml` if it
exists):

    identities:
      rita: {role: rep, team: east}
      mona: {role: manager, team: east}
      olga: {role: ops}
      ada:  {role: auditor}

and/or the environment, `DEALFLOW_IDENTITIES="rita=rep:east,mona=manager:east,olga=ops"`, whose
entries win over the file's. With neither, access control is off: anyone may do anything, as on a
single-user machine. The acting identity is the `--as` name (or `$DEALFLOW_USER`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from domain.access import ROLES, Claim, Role
from worker.settings import SettingsError, home

Permission = Literal["deploy", "migrate", "experiment", "import", "start", "act", "read"]

# What each role may do, checked before anything is sent; ownership of a deal is checked by the
# deal itself (workflows/access.py), which knows its owner and team.
ALLOWED: dict[Role, set[Permission]] = {
    "rep": {"start", "act", "read"},
    "manager": {"start", "act", "read"},
    "ops": {"deploy", "migrate", "experiment", "import", "read"},
    "auditor": {"read"},
}


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    team: str | None = None

    @model_validator(mode="after")
    def _manager_has_team(self) -> Identity:
        if self.role == "manager" and not self.team:
            raise ValueError("a manager needs a team")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identities: dict[str, Identity]


class AccessDenied(Exception):
    def __init__(self, actor: str, permission: str, message: str):
        super().__init__(message)
        self.actor, self.permission, self.message = actor, permission, message


@dataclass(frozen=True)
class AccessPolicy:
    identities: dict[str, Identity]
    source: str

    def identity(self, actor: str, permission: Permission) -> Identity:
        found = self.identities.get(actor)
        if found is None:
            # the access file by its name: a refusal can reach a page, and a page shows no server path
            named = " + ".join(Path(part).name for part in self.source.split(" + "))
            raise AccessDenied(actor, permission, f"{actor!r} is not a known identity ({named})")
        return found

    def require(self, actor: str, permission: Permission) -> Claim:
        """The actor's claim, if their role allows `permission`; AccessDenied otherwise."""
        who = self.identity(actor, permission)
        if permission not in ALLOWED[who.role]:
            may = ", ".join(sorted(ALLOWED[who.role]))
            raise AccessDenied(actor, permission, f"{actor} is {who.role}: may {may}, not {permission}")
        return Claim(role=who.role, team=who.team)

    def team_of(self, name: str) -> str | None:
        found = self.identities.get(name)
        return found.team if found else None


def _from_env(text: str) -> dict[str, Identity]:
    out = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, rest = entry.partition("=")
        role, _, team = rest.partition(":")
        if not sep or not name.strip() or role not in ROLES:
            raise SettingsError(
                f"DEALFLOW_IDENTITIES entry {entry!r}: write NAME=ROLE[:TEAM] with ROLE one of {', '.join(ROLES)}"
            )
        try:
            out[name.strip()] = Identity(role=role, team=team or None)
        except ValidationError as exc:
            raise SettingsError(f"DEALFLOW_IDENTITIES entry {entry!r}: {exc.errors()[0]['msg']}") from None
    return out


def load_policy() -> AccessPolicy | None:
    explicit = os.environ.get("DEALFLOW_ACCESS_FILE")
    path = Path(explicit) if explicit else home() / "access.yaml"
    identities: dict[str, Identity] = {}
    sources = []
    if explicit or path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            identities.update(_File.model_validate(data).identities)
        except OSError as exc:
            raise SettingsError(f"access file {path}: cannot read it: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"access file {path}: not valid YAML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SettingsError(f"access file {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
        sources.append(str(path))
    env = os.environ.get("DEALFLOW_IDENTITIES")
    if env:
        identities.update(_from_env(env))
        sources.append("DEALFLOW_IDENTITIES")
    if not sources:
        return None
    return AccessPolicy(identities, " + ".join(sources))
