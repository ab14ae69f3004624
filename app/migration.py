"""Moving running deals from one deployed version of a process to another.

A plan is made from the current-state projection and both versions: each running deal's stage
goes to the stage of the same id, to the one `--map` names, or to the one the diff recognises as
its rename. A plan that would leave any deal on a stage the new version does not have is refused
whole. Applying it sends each deal the `migrate` update, whose validator checks the deal again
(it may have moved since the plan was made); the request id is derived from the plan, so running
the same migration twice moves nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from definitions.diff import renames
from definitions.loader import PinnedDefinition
from domain.decide import stage_mapping
from store.deals import DealRow


@dataclass(frozen=True)
class Move:
    deal_id: str
    from_stage: str | None
    to_stage: str | None


@dataclass(frozen=True)
class Stranded:
    deal_id: str
    stage: str | None
    reason: str


@dataclass
class MigrationPlan:
    process: str
    source: PinnedDefinition
    target: PinnedDefinition
    stage_map: dict[str, str]  # every old stage the new version keeps, old id -> new id
    explicit: dict[str, str]  # what the plan sends to each deal: --map and recognised renames
    moves: list[Move] = field(default_factory=list)
    stranded: list[Stranded] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stranded

    def request_id(self, deal_id: str) -> str:
        return f"migrate:{self.source.version}:{self.target.version}:{deal_id}"


class PlanError(ValueError):
    """The stage map's entries themselves are wrong (not about any one deal)."""


def plan(
    source: PinnedDefinition, target: PinnedDefinition, deals: list[DealRow], user_map: dict[str, str]
) -> MigrationPlan:
    old, new = source.definition, target.definition
    if old.name != new.name:
        raise PlanError(f"cannot migrate between processes: {old.name} and {new.name}")
    if source.version == target.version:
        raise PlanError(f"the version to migrate from and the one to migrate to are the same, {source.version}")
    problems = [f"{k} is not a stage of {source.ref}" for k in user_map if not old.has_stage(k)]
    problems += [f"{v} is not a stage of {target.ref}" for v in user_map.values() if not new.has_stage(v)]
    if problems:
        raise PlanError("; ".join(problems))
    explicit = {**renames(old, new), **user_map}
    mapping = stage_mapping(old, new, explicit)
    result = MigrationPlan(old.name, source, target, mapping, explicit)
    for deal in deals:
        if deal.stage is None or deal.stage in mapping:
            result.moves.append(Move(deal.deal_id, deal.stage, mapping.get(deal.stage or "")))
        else:
            result.stranded.append(
                Stranded(
                    deal.deal_id,
                    deal.stage,
                    f"stage {deal.stage} is not in {target.ref}; map {deal.stage} to one of its stages",
                )
            )
    return result
