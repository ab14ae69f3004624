"""Identities and roles: the access configuration, read (and read again when it changes).

Configured by a YAML file (`$DEALFLOW_ACCESS_FILE`, else `<DEALFLOW_HOME>/access.yaml` if it
exists):

    identities:
      rita: {role: rep, team: east}
      mona: {role: manager, team: east}
      olga: {role: ops}
      ada:  {role: auditor}

and/or the environment, `DEALFLOW_IDENTITIES="rita=rep:east,mona=manager:east,olga=ops"`, whose
entries win over the file's. With neither, access control is off: anyone may do anything, as on a
single-user machine. The acting identity is the `--as` name (or `$DEALFLOW_USER`). What each
role may do is decided in one place, `app/permissions.py`.

A long-running process (the web app) holds a `PolicySource`, which reads the file again whenever
it changes, so that removing or changing someone takes effect at their next request.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from domain.access import ROLES, Role
from worker.settings import SettingsError, home

log = logging.getLogger("dealflow.access")


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


@dataclass(frozen=True)
class AccessPolicy:
    identities: dict[str, Identity]
    source: str

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


def _read_file(path: Path) -> dict[str, Identity]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return dict(_File.model_validate(data).identities)
    except OSError as exc:
        raise SettingsError(f"access file {path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"access file {path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"access file {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def _file_path() -> tuple[Path, bool]:
    explicit = os.environ.get("DEALFLOW_ACCESS_FILE")
    return (Path(explicit), True) if explicit else (home() / "access.yaml", False)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file does: its mtime, size and inode (an editor may replace it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load_policy() -> AccessPolicy | None:
    path, explicit = _file_path()
    identities: dict[str, Identity] = {}
    sources = []
    if explicit or path.exists():
        identities.update(_read_file(path))
        sources.append(str(path))
    env = os.environ.get("DEALFLOW_IDENTITIES")
    if env:
        identities.update(_from_env(env))
        sources.append("DEALFLOW_IDENTITIES")
    if not sources:
        return None
    return AccessPolicy(identities, " + ".join(sources))


@dataclass
class PolicySource:
    """The access configuration as it is now, for a process that runs for days.

    `current()` stats the access file (microseconds) and reads it again when it changed. Once
    access control is on it stays on: a file that is removed or no longer reads leaves only
    `DEALFLOW_IDENTITIES`' identities (none, without it), so a bad edit locks people out rather
    than letting everyone in, and the error is logged.
    """

    path: Path
    env: str | None
    policy: AccessPolicy | None
    stamp: tuple[int, int, int] | None = field(default=None)

    @classmethod
    def load(cls) -> PolicySource:
        """The source, read now; a configuration that does not read is a SettingsError here."""
        path, _ = _file_path()
        stamp = _stamp(path)
        return cls(path, os.environ.get("DEALFLOW_IDENTITIES") or None, load_policy(), stamp)

    def current(self) -> AccessPolicy | None:
        stamp = _stamp(self.path)
        if stamp != self.stamp:
            self.stamp = stamp
            self.policy = self._reread(stamp is not None)
        return self.policy

    def _reread(self, exists: bool) -> AccessPolicy | None:
        identities: dict[str, Identity] = {}
        sources = []
        if exists:
            try:
                identities.update(_read_file(self.path))
                sources.append(str(self.path))
            except SettingsError as exc:
                log.error("%s: nobody it named is signed in until it reads again", exc)
                sources.append(f"{self.path} (unreadable)")
        elif self.policy is not None:
            log.error("access file %s is gone: nobody it named is signed in until it is back", self.path)
            sources.append(f"{self.path} (missing)")
        if self.env:
            identities.update(_from_env(self.env))
            sources.append("DEALFLOW_IDENTITIES")
        if not sources:
            return None
        return AccessPolicy(identities, " + ".join(sources))
