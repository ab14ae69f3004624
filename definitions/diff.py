"""What changed between two versions of a process, in words an operations team reads.

A stage that disappears while another appears in its place is reported as a rename when they
look like the same step (same title, or same phase and same exit criteria, at the same place in
the order); `definitions migrate` proposes those renames as its default stage mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from definitions.loader import PinnedDefinition
from definitions.model import Cadence, Holidays, ProcessDefinition, Stage, Team


@dataclass(frozen=True)
class Change:
    part: str  # "stage", "cadence", "outcome", "phase", "team", "template", "process"
    subject: str  # the stage, cadence, ... it is about ("" for the whole process)
    kind: str  # "added", "removed", "renamed", "changed", "moved"
    text: str


def _criteria(stage: Stage) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.fact, f.type, tuple(f.options)) for f in stage.exit_criteria]


def _looks_same(a: Stage, b: Stage) -> bool:
    return a.title == b.title or (a.phase == b.phase and bool(a.exit_criteria) and _criteria(a) == _criteria(b))


def renames(old: ProcessDefinition, new: ProcessDefinition) -> dict[str, str]:
    """Stages of `old` that `new` seems to call by another id: {old id: new id}."""
    old_ids, new_ids = [s.id for s in old.stages], [s.id for s in new.stages]
    gone = [s for s in old.stages if s.id not in new_ids]
    came = [s for s in new.stages if s.id not in old_ids]
    found: dict[str, str] = {}
    for a in gone:
        candidates = [b for b in came if b.id not in found.values() and _looks_same(a, b)]
        if not candidates:
            continue
        # prefer the candidate nearest to the old stage's place in the order
        best = min(candidates, key=lambda b: abs(new_ids.index(b.id) - old_ids.index(a.id)))
        found[a.id] = best.id
    return found


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]" if value else "none"
    if value is None or value == "":
        return "none"
    if hasattr(value, "model_dump"):
        dumped = value.model_dump(mode="json", exclude_defaults=True)
        return ", ".join(f"{k} {v}" for k, v in dumped.items()) or "defaults"
    return str(value.value if hasattr(value, "value") else value)


def _stage_changes(a: Stage, b: Stage, label: str) -> list[Change]:
    out: list[Change] = []

    def say(text: str) -> None:
        out.append(Change("stage", b.id, "changed", f"stage {label}: {text}"))

    for field in ("title", "phase", "probability", "proposal_template", "cadence", "post_sale", "team"):
        before, after = getattr(a, field), getattr(b, field)
        if before != after:
            say(f"{field.replace('_', ' ')} {_plain(before)} -> {_plain(after)}")
    old_facts = {f.fact: f for f in a.exit_criteria}
    new_facts = {f.fact: f for f in b.exit_criteria}
    for fact in new_facts.keys() - old_facts.keys():
        say(f"new exit criterion {fact} ({new_facts[fact].type})")
    for fact in old_facts.keys() - new_facts.keys():
        say(f"exit criterion {fact} dropped")
    for fact in sorted(old_facts.keys() & new_facts.keys()):
        f, g = old_facts[fact], new_facts[fact]
        if f.type != g.type:
            say(f"exit criterion {fact} type {f.type} -> {g.type}")
        if f.options != g.options:
            say(f"exit criterion {fact} options {_plain(f.options)} -> {_plain(g.options)}")
        if f.question != g.question:
            say(f"exit criterion {fact} asks {g.question!r} (was {f.question!r})")
    if a.reminder != b.reminder:
        if a.reminder is None:
            say("now has a reminder")
        elif b.reminder is None:
            say("reminder removed")
        else:
            if a.reminder.deadline != b.reminder.deadline:
                say(f"reminder deadline {a.reminder.deadline} -> {b.reminder.deadline}")
            if a.reminder.escalations != b.reminder.escalations:
                say(f"escalations: {len(a.reminder.escalations)} rungs -> {len(b.reminder.escalations)} rungs")
    for move in ("next", "skip", "back"):
        before, after = getattr(a.moves, move), getattr(b.moves, move)
        if before.allowed != after.allowed:
            say(f"{move} moves {'allowed' if after.allowed else 'no longer allowed'}")
        elif before.reason_required != after.reason_required:
            say(f"{move} moves {'need' if after.reason_required else 'no longer need'} a reason")
    return out


def _differs(a: object, b: object, attr: str) -> bool:
    return bool(getattr(a, attr) != getattr(b, attr))


def _cadence_changes(a: Cadence, b: Cadence) -> list[Change]:
    out: list[Change] = []

    def say(text: str) -> None:
        out.append(Change("cadence", b.id, "changed", f"cadence {b.id}: {text}"))

    if len(a.touches) != len(b.touches):
        say(f"{len(a.touches)} touches -> {len(b.touches)} touches")
    for n, (t, u) in enumerate(zip(a.touches, b.touches, strict=False), start=1):
        if t != u:
            parts = [
                f"{k} {getattr(t, k)} -> {getattr(u, k)}"
                for k in ("channel", "delay")
                if getattr(t, k) != getattr(u, k)
            ]
            if t.template != u.template:
                parts.append("new wording")
            say(f"touch {n}: " + ", ".join(parts))
    if a.min_touches != b.min_touches:
        say(f"minimum touches {a.min_touches} -> {b.min_touches}")
    if a.stop_on != b.stop_on:
        say(f"stops on {_plain(b.stop_on)} (was {_plain(a.stop_on)})")
    return out


def _rule(t: Team) -> str:
    return f"{t.assign.value} ({t.person})" if t.person else t.assign.value


def _team_changes(a: ProcessDefinition, b: ProcessDefinition) -> list[Change]:
    """Teams added, removed, their members and rules; and which team owns each phase."""
    out: list[Change] = []
    old, new = {t.id: t for t in a.teams}, {t.id: t for t in b.teams}
    for tid in sorted(new.keys() - old.keys()):
        t = new[tid]
        out.append(Change("team", tid, "added", f"team {tid} added: {_plain(t.members)}, {_rule(t)}"))
    for tid in sorted(old.keys() - new.keys()):
        out.append(Change("team", tid, "removed", f"team {tid} removed"))
    for tid in sorted(old.keys() & new.keys()):
        t, u = old[tid], new[tid]
        joined = [m for m in u.members if m not in t.members]
        left = [m for m in t.members if m not in u.members]
        if joined or left:
            words = [f"+{m}" for m in joined] + [f"-{m}" for m in left]
            out.append(Change("team", tid, "changed", f"team {tid}: members " + " ".join(words)))
        if _rule(t) != _rule(u):
            out.append(Change("team", tid, "changed", f"team {tid}: assigns {_rule(t)} -> {_rule(u)}"))
        if t.title != u.title:
            out.append(Change("team", tid, "changed", f"team {tid}: title {_plain(t.title)} -> {_plain(u.title)}"))
    old_phases = {p.id: p.team for p in a.phases}
    for p in b.phases:
        if p.id in old_phases and old_phases[p.id] != p.team:
            out.append(
                Change("phase", p.id, "changed", f"phase {p.id}: team {_plain(old_phases[p.id])} -> {_plain(p.team)}")
            )
    return out


def _calendar_name(h: Holidays) -> str:
    where = f"{h.country}-{h.subdivision}" if h.subdivision else h.country or "own dates only"
    return f"{where}, {h.first_year}-{h.last_year}" if h.first_year is not None else where


def _holiday_changes(a: Holidays | None, b: Holidays | None) -> list[Change]:
    """Redeploying a year later moves the pinned window: say so, and how many days off that moved."""
    if a == b:
        return []
    if a is None or b is None:
        verb, h = ("added", b) if a is None else ("removed", a)
        assert h is not None
        return [Change("process", "holidays", verb, f"holidays ({_calendar_name(h)}) {verb}")]
    out = []
    if _calendar_name(a) != _calendar_name(b):
        out.append(Change("process", "holidays", "changed", f"holidays {_calendar_name(a)} -> {_calendar_name(b)}"))
    added, dropped = sorted(set(b.dates) - set(a.dates)), sorted(set(a.dates) - set(b.dates))
    if added or dropped:
        words = [f"{len(added)} added" if added else "", f"{len(dropped)} dropped" if dropped else ""]
        out.append(Change("process", "holidays", "changed", f"days off {', '.join(w for w in words if w)}"))
    return out


def diff(old: PinnedDefinition, new: PinnedDefinition) -> list[Change]:
    a, b = old.definition, new.definition
    out: list[Change] = []
    if a.name != b.name:
        out.append(Change("process", "", "changed", f"process name {a.name} -> {b.name}"))
    renamed = renames(a, b)
    old_ids, new_ids = [s.id for s in a.stages], [s.id for s in b.stages]
    for s in a.stages:
        if s.id in renamed:
            out.append(Change("stage", renamed[s.id], "renamed", f"stage {s.id} renamed to {renamed[s.id]}"))
        elif s.id not in new_ids:
            out.append(Change("stage", s.id, "removed", f"stage {s.id} ({s.title}) removed"))
    for i, s in enumerate(b.stages):
        if s.id not in old_ids and s.id not in renamed.values():
            after = f"after {b.stages[i - 1].id}" if i else "first"
            out.append(Change("stage", s.id, "added", f"stage {s.id} ({s.title}) added, {after}"))
    kept_old = [renamed.get(x, x) for x in old_ids if renamed.get(x, x) in new_ids]
    kept_new = [x for x in new_ids if x in kept_old]
    if kept_old != kept_new:
        out.append(Change("stage", "", "moved", "stage order changed: " + " -> ".join(kept_new)))
    for s in a.stages:
        target = renamed.get(s.id, s.id)
        if target in new_ids:
            label = s.id if target == s.id else f"{s.id} (now {target})"
            out.extend(_stage_changes(s, b.stage(target), label))
    old_c, new_c = {c.id: c for c in a.cadences}, {c.id: c for c in b.cadences}
    for cid in sorted(new_c.keys() - old_c.keys()):
        out.append(Change("cadence", cid, "added", f"cadence {cid} added ({len(new_c[cid].touches)} touches)"))
    for cid in sorted(old_c.keys() - new_c.keys()):
        out.append(Change("cadence", cid, "removed", f"cadence {cid} removed"))
    for cid in sorted(old_c.keys() & new_c.keys()):
        out.extend(_cadence_changes(old_c[cid], new_c[cid]))
    if a.won_from() != b.won_from():
        out.append(Change("outcome", "won", "changed", f"won from {_plain(a.won_from())} -> {_plain(b.won_from())}"))
    if a.lost_from() != b.lost_from():
        out.append(
            Change("outcome", "lost", "changed", f"lost from {_plain(a.lost_from())} -> {_plain(b.lost_from())}")
        )
    la, lb = a.outcomes.lost, b.outcomes.lost
    if la and lb:
        if set(la.reasons) != set(lb.reasons):
            added, dropped = set(lb.reasons) - set(la.reasons), set(la.reasons) - set(lb.reasons)
            words = [f"+{r}" for r in sorted(added)] + [f"-{r}" for r in sorted(dropped)]
            out.append(Change("outcome", "lost", "changed", "lost reasons " + " ".join(words)))
        if la.min_touches_before_lost != lb.min_touches_before_lost:
            out.append(
                Change(
                    "outcome",
                    "lost",
                    "changed",
                    f"touches needed before lost {la.min_touches_before_lost} -> {lb.min_touches_before_lost}",
                )
            )
    old_phases, new_phases = [p.id for p in a.phases], [p.id for p in b.phases]
    if old_phases != new_phases:
        out.append(Change("phase", "", "changed", f"phases {_plain(old_phases)} -> {_plain(new_phases)}"))
    out.extend(_team_changes(a, b))
    if a.rebuy != b.rebuy:
        kinds = [f"{r.kind.value} -> {r.process} after {r.delay}" for r in b.rebuy]
        out.append(Change("process", "rebuy", "changed", f"rebuy follow-ons now: {_plain(kinds)}"))
    for field in ("timezone", "business_days", "deal_fields"):
        if getattr(a, field) != getattr(b, field):
            out.append(
                Change(
                    "process",
                    field,
                    "changed",
                    f"{field.replace('_', ' ')} {_plain(getattr(a, field))} -> {_plain(getattr(b, field))}",
                )
            )
    out.extend(_holiday_changes(a.holidays, b.holidays))
    for name in sorted(old.templates.keys() | new.templates.keys()):
        if old.templates.get(name) != new.templates.get(name):
            verb = "added" if name not in old.templates else "removed" if name not in new.templates else "changed"
            out.append(Change("template", name, verb, f"proposal template {name} {verb}"))
    return out
