"""The mapping file: which process stage each CRM stage is, and whose our owners and lost reasons
are. A CRM stage may also be `won`, `lost` (the outcome stages CRMs keep as stages) or `skip`.

    stages:
      Prospecting: prospecting
      "Closed Won": won
      "Closed Lost": lost
      "Id. Decision Makers": skip
    lost_reasons:
      "Too expensive": no-budget
      "*": no-decision          # any other reason (optional)
    owners:
      "005Dn000001AbCd": rita
      "*": ops                  # any other owner (optional; without it a CRM owner is kept as is)
    columns:                    # the export's column -> what it is, where its header is not a known one
      OwnerName: owner
      "Expected Revenue": value
      "Budget__c": needs-assessment.budget   # a fact: STAGE.FACT, in the process's ids
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from definitions.model import ProcessDefinition

OUTCOMES = {"won", "lost", "skip"}
ANY = "*"
COLUMN_ROLES = ("id", "name", "stage", "owner", "value", "created", "closed", "lost_reason")


class MappingError(ValueError):
    pass


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: dict[str, str] = {}
    lost_reasons: dict[str, str] = {}
    owners: dict[str, str] = {}
    columns: dict[str, str] = {}  # the CRM's column -> one of COLUMN_ROLES or STAGE.FACT

    def reader_columns(self) -> dict[str, str]:
        """What the readers ask for (a role or STAGE.FACT) -> the CRM's column."""
        return {role: crm for crm, role in self.columns.items()}

    def stage(self, crm_stage: str) -> str | None:
        return self.stages.get(crm_stage)

    def owner(self, crm_owner: str | None) -> str | None:
        if crm_owner and crm_owner in self.owners:
            return self.owners[crm_owner]
        return self.owners.get(ANY, crm_owner)

    def lost_reason(self, crm_reason: str | None) -> str | None:
        if crm_reason and crm_reason in self.lost_reasons:
            return self.lost_reasons[crm_reason]
        return self.lost_reasons.get(ANY)

    def check(self, d: ProcessDefinition) -> list[str]:
        """What in the mapping names nothing of the process, in words."""
        problems = []
        ids = {s.id for s in d.stages}
        for crm, ours in self.stages.items():
            if ours not in ids and ours not in OUTCOMES:
                problems.append(
                    f"stages: {crm!r} maps to {ours!r}, which is not a stage of {d.name} "
                    f"(its stages: {', '.join(sorted(ids))}; or won, lost, skip)"
                )
        problems += self._check_columns(d)
        reasons = set(d.outcomes.lost.reasons) if d.outcomes.lost else set()
        for crm, ours in self.lost_reasons.items():
            if ours not in reasons:
                problems.append(
                    f"lost_reasons: {crm!r} maps to {ours!r}, which is not a lost reason of {d.name} "
                    f"(its reasons: {', '.join(sorted(reasons)) or 'none'})"
                )
        return problems

    def _check_columns(self, d: ProcessDefinition) -> list[str]:
        problems = []
        seen: dict[str, str] = {}
        for crm, role in self.columns.items():
            if role in seen:
                problems.append(f"columns: {crm!r} and {seen[role]!r} are both {role}: name one column for it")
            seen[role] = crm
            if role in COLUMN_ROLES:
                continue
            stage, dot, fact = role.partition(".")
            if not dot:
                problems.append(
                    f"columns: {crm!r} maps to {role!r}: write one of {', '.join(COLUMN_ROLES)}, or STAGE.FACT"
                )
            elif not d.has_stage(stage):
                problems.append(f"columns: {crm!r} maps to {role!r}, and {d.name} has no stage {stage!r}")
            elif fact not in {f.fact for f in d.stage(stage).exit_criteria}:
                problems.append(f"columns: {crm!r} maps to {role!r}, and stage {stage!r} asks for no fact {fact!r}")
        return problems


def identity(d: ProcessDefinition) -> Mapping:
    """The mapping of an export already in the process's own terms (the generic CSV)."""
    reasons = d.outcomes.lost.reasons if d.outcomes.lost else []
    return Mapping(
        stages={s.id: s.id for s in d.stages} | {"won": "won", "lost": "lost"}, lost_reasons={r: r for r in reasons}
    )


def load(path: str | Path) -> Mapping:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MappingError(f"{p}: expected a mapping with stages, lost_reasons and owners")
    data = {k: {str(a): str(b) for a, b in (v or {}).items()} if isinstance(v, dict) else v for k, v in data.items()}
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        if first["type"] == "extra_forbidden":
            raise MappingError(f"{p}: unknown key {where!r}: write stages, lost_reasons, owners or columns") from None
        raise MappingError(f"{p}: {where}: {first['msg']}") from None
