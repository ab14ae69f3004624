"""Phase strength per rep, from the counts the store takes per phase and rep: each rep's
conversion against the rest of the team, with verdicts that are rarely wrong (`verdicts`).

What a deal entering, converting out of and settling in a phase means, and who is credited with
it, is defined with the SQL that counts it (`store/rep_strength.py`, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from analytics.verdicts import Compared, Group, p_text, split_off
from definitions.model import ProcessDefinition


@dataclass(frozen=True)
class PhaseCount:
    """The deals of one phase, credited to one rep (`rep` None: the whole team's)."""

    phase: str
    rep: str | None
    entered: int
    converted: int
    settled: int  # converted, or the deal ended
    timed: int  # deals whose time in the phase is known
    median_seconds: float | None


class RepPhase(BaseModel):
    rep: str
    entered: int
    open: int
    converted: int
    median_seconds: float | None
    timed: int  # deals whose time in the phase is known
    conversion: Compared  # converted of settled, against the rest of the team


class PhaseStrength(BaseModel):
    phase: str
    entered: int
    open: int
    converted: int
    settled: int
    conversion: float | None
    median_seconds: float | None
    reps: list[RepPhase]


def phases_of(d: ProcessDefinition) -> list[str]:
    """The phases with a pre-sale stage, in stage order: those a deal can convert out of."""
    return list(dict.fromkeys(s.phase for s in d.stages if not s.post_sale))


def phase_strength(d: ProcessDefinition, counts: Sequence[PhaseCount]) -> tuple[list[PhaseStrength], list[str]]:
    """Every phase's figures and its reps', and the verdicts named, most certain first per phase."""
    phases = phases_of(d)
    team = {c.phase: c for c in counts if c.rep is None}
    reps = {p: sorted((c for c in counts if c.rep is not None and c.phase == p), key=_rep) for p in phases}
    families = [[Group(_rep(c), c.converted, c.settled) for c in reps[p]] for p in phases]

    def wording(family: int, rep: str, rate: float, rest: float, p: float) -> str:
        how = "better" if rate > rest else "worse"
        return f"{rep} converts {how} in {phases[family]} ({rate:.0%} vs {rest:.0%}, {p_text(p)})"

    tested = split_off(families, wording)
    out, verdicts = [], []
    for phase, found in zip(phases, tested, strict=True):
        rep_rows = [
            RepPhase(
                rep=_rep(c),
                entered=c.entered,
                open=c.entered - c.settled,
                converted=c.converted,
                median_seconds=c.median_seconds,
                timed=c.timed,
                conversion=found[_rep(c)],
            )
            for c in reps[phase]
        ]
        named = sorted((x for x in rep_rows if x.conversion.significant), key=lambda x: x.conversion.p_adjusted or 0)
        verdicts += [x.conversion.verdict for x in named]
        t = team.get(phase)
        settled = t.settled if t else 0
        out.append(
            PhaseStrength(
                phase=phase,
                entered=t.entered if t else 0,
                open=(t.entered - t.settled) if t else 0,
                converted=t.converted if t else 0,
                settled=settled,
                conversion=t.converted / settled if t and settled else None,
                median_seconds=t.median_seconds if t else None,
                reps=rep_rows,
            )
        )
    return out, verdicts


def _rep(count: PhaseCount) -> str:
    return count.rep or ""
