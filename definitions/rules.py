"""Rules that relate the parts of a definition to each other.

Each rule yields `(path, message)` pairs instead of raising, so a definition with five mistakes
is reported with five messages in one go; the loader adds the file name and line numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from definitions.fact_types import KINDS
from definitions.model import AssignRule, ProcessDefinition, template_names
from definitions.templates import check as check_template

Path = tuple[str | int, ...]
Problem = tuple[Path, str]


def check(d: ProcessDefinition) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (
        _unique_ids,
        _references,
        _outcomes,
        _post_sale_last,
        _phase_order,
        _facts,
        _cadences,
        _touch_minimum,
        _timezone,
        _teams,
    ):
        problems.extend(rule(d))
    if not problems:  # reachability is only meaningful on a well-formed graph
        problems.extend(_reachability(d))
    problems.extend(_touch_templates(d))
    return problems


def _duplicates(ids: list[str]) -> set[str]:
    return {i for i, n in Counter(ids).items() if n > 1}


def _unique_ids(d: ProcessDefinition) -> Iterator[Problem]:
    for key, items in (
        ("phases", [p.id for p in d.phases]),
        ("stages", [s.id for s in d.stages]),
        ("cadences", [c.id for c in d.cadences]),
        ("proposal_templates", [t.id for t in d.proposal_templates]),
        ("teams", [t.id for t in d.teams]),
    ):
        dups = _duplicates(items)
        for i, item in enumerate(items):
            if item in dups and items.index(item) != i:
                yield (key, i, "id"), f"duplicate {key[:-1].replace('_', ' ')} id {item!r}"


def _references(d: ProcessDefinition) -> Iterator[Problem]:
    phases = {p.id for p in d.phases}
    cadences = {c.id for c in d.cadences}
    templates = {t.id for t in d.proposal_templates}
    for i, s in enumerate(d.stages):
        if s.phase not in phases:
            yield (
                ("stages", i, "phase"),
                (f"stage {s.id!r} refers to unknown phase {s.phase!r} (known: {sorted(phases)})"),
            )
        if s.cadence is not None and s.cadence not in cadences:
            yield ("stages", i, "cadence"), f"stage {s.id!r} refers to unknown cadence {s.cadence!r}"
        if s.proposal_template is not None and s.proposal_template not in templates:
            yield (
                ("stages", i, "proposal_template"),
                (f"stage {s.id!r} refers to unknown proposal template {s.proposal_template!r}"),
            )


def _outcomes(d: ProcessDefinition) -> Iterator[Problem]:
    o = d.outcomes
    if o.won is None and o.lost is None:
        yield ("outcomes",), "no terminal outcome: define at least 'won' (and usually 'lost')"
        return
    if o.won is None:
        yield ("outcomes", "won"), "no terminal outcome 'won': a deal of this process could never be won"
    stage_ids = {s.id for s in d.stages}
    post = {s.id for s in d.post_sale}
    for kind, outcome in (("won", o.won), ("lost", o.lost)):
        if outcome is None:
            continue
        for j, sid in enumerate(outcome.from_stages):
            if sid not in stage_ids:
                yield ("outcomes", kind, "from_stages", j), f"unknown stage {sid!r} referenced"
            elif sid in post:
                yield ("outcomes", kind, "from_stages", j), (f"stage {sid!r} is post-sale: a deal there is already won")
    if o.won is not None and d.pre_sale and o.won.from_stages:
        last = d.pre_sale[-1].id
        if last not in o.won.from_stages:
            yield (
                ("outcomes", "won", "from_stages"),
                (f"the last pre-sale stage {last!r} must be listed: completing it wins the deal"),
            )
    if o.lost is not None:
        for i, reason in enumerate(o.lost.reasons):
            if reason in o.lost.reasons[:i]:
                yield ("outcomes", "lost", "reasons", i), f"duplicate lost reason {reason!r}"


def _post_sale_last(d: ProcessDefinition) -> Iterator[Problem]:
    if not d.pre_sale:
        yield ("stages",), "every stage is post_sale: a process needs at least one stage before the sale"
        return
    seen_post = False
    for i, s in enumerate(d.stages):
        if s.post_sale:
            seen_post = True
        elif seen_post:
            yield (
                ("stages", i, "post_sale"),
                (f"stage {s.id!r} comes after a post-sale stage: post-sale stages must be last"),
            )


def _facts(d: ProcessDefinition) -> Iterator[Problem]:
    for i, s in enumerate(d.stages):
        names = [f.fact for f in s.exit_criteria]
        dups = _duplicates(names)
        for j, f in enumerate(s.exit_criteria):
            path: Path = ("stages", i, "exit_criteria", j)
            if f.fact in dups and names.index(f.fact) != j:
                yield (*path, "fact"), f"duplicate exit criterion {f.fact!r} in stage {s.id!r}"
            takes_options = f.kind.options
            if takes_options and not f.options:
                yield (*path, "options"), f"fact {f.fact!r} is a {f.type} but lists no options"
            if not takes_options and f.options:
                yield (
                    (*path, "options"),
                    f"fact {f.fact!r} has options but its type is {f.type!r}, not {_with_options()}",
                )


def _with_options() -> str:
    return " or ".join(repr(k.name) for k in KINDS.values() if k.options)


def _cadences(d: ProcessDefinition) -> Iterator[Problem]:
    for i, c in enumerate(d.cadences):
        if len(c.touches) < c.min_touches:
            yield (
                ("cadences", i, "touches"),
                (
                    f"cadence {c.id!r} has {len(c.touches)} touches but min_touches is {c.min_touches}: "
                    "most sales need five or more follow-ups"
                ),
            )


def _touch_minimum(d: ProcessDefinition) -> Iterator[Problem]:
    """A deal may only be lost once it has had `min_touches_before_lost` touches; if no cadence
    can send that many, or none has started by the stage it is lost at, it can never be lost
    there (`too_few_touches` for ever)."""
    lost = d.outcomes.lost
    if lost is None or not lost.min_touches_before_lost:
        return
    path: Path = ("outcomes", "lost", "min_touches_before_lost")
    need = lost.min_touches_before_lost
    named = {s.cadence for s in d.stages if s.cadence is not None}
    run = [c for c in d.cadences if c.id in named]
    if not d.cadences:
        yield path, "min_touches_before_lost is set but the process defines no cadence to make touches"
        return
    if not run:
        yield path, f"min_touches_before_lost is {need} but no stage starts a cadence to make touches"
        return
    longest = max(run, key=lambda c: len(c.touches))
    if len(longest.touches) < need:
        yield (
            path,
            f"min_touches_before_lost is {need} but no cadence makes that many touches (the longest, "
            f"{longest.id!r}, makes {len(longest.touches)}): a deal whose cadence has run could never be lost",
        )
        return
    pre = [s.id for s in d.pre_sale]
    first = min((pre.index(s.id) for s in d.pre_sale if s.cadence in named), default=len(pre))
    early = [sid for sid in d.lost_from() if sid in pre and pre.index(sid) < first]
    if early:
        listed = lost.from_stages
        where: Path = ("outcomes", "lost", "from_stages", listed.index(early[0])) if listed else path
        fix = "leave them out of from_stages" if listed else "list the others in outcomes.lost.from_stages"
        yield (
            where,
            f"a deal at {', '.join(repr(s) for s in early)} could never be lost: min_touches_before_lost is {need} "
            f"and no cadence has started by then (the first starts at {pre[first]!r}); {fix}, "
            "or start a cadence sooner",
        )


def _phase_order(d: ProcessDefinition) -> Iterator[Problem]:
    """Each phase's stages come together, in the order the phases are listed: a phase left and
    entered again (a, b, a) would count its deals twice in a funnel, credit the phase to two
    owners in turn and make "converted out of the phase" mean nothing."""
    declared = [p.id for p in d.phases]
    seen: list[str] = []
    for i, s in enumerate(d.stages):
        if seen and s.phase == seen[-1]:
            continue
        if s.phase in seen:
            yield (
                ("stages", i, "phase"),
                f"stage {s.id!r} goes back to phase {s.phase!r} after phase {seen[-1]!r}: "
                "a phase's stages must come one after another",
            )
            return
        if seen and s.phase in declared and seen[-1] in declared and declared.index(s.phase) < declared.index(seen[-1]):
            yield (
                ("stages", i, "phase"),
                f"stage {s.id!r} puts phase {s.phase!r} after phase {seen[-1]!r}, but phases lists "
                f"{s.phase!r} first: list the phases in the order their stages come",
            )
            return
        seen.append(s.phase)


def _touch_templates(d: ProcessDefinition) -> Iterator[Problem]:
    """Every touch's template, in the one template language, with the names of
    `template_names` (proposal templates are files: the loader checks those)."""
    known = template_names(d)
    for i, c in enumerate(d.cadences):
        for j, touch in enumerate(c.touches):
            path: Path = ("cadences", i, "touches", j, "template")
            if "\n" in touch.template or "\r" in touch.template:
                yield path, "a touch's template is its subject line: write it on one line"
                continue
            for problem in check_template(touch.template, known):
                yield path, problem.message


def _teams(d: ProcessDefinition) -> Iterator[Problem]:
    """A team must be able to take every deal handed to it: someone to hand it to, and for a
    fixed rule, a person who is one of its members; every team named must be declared."""
    for i, t in enumerate(d.teams):
        path: Path = ("teams", i)
        if not t.members:
            yield (*path, "members"), f"team {t.id!r} has no members: a deal handed to it would have no one to go to"
        dups = _duplicates(t.members)
        for j, member in enumerate(t.members):
            if member != member.strip():
                yield (*path, "members", j), f"member {member!r} of team {t.id!r} has spaces around the name"
            elif member in dups and t.members.index(member) != j:
                yield (*path, "members", j), f"member {member!r} is listed twice in team {t.id!r}"
        if t.assign is AssignRule.fixed:
            if t.person is None:
                yield (*path, "person"), f"team {t.id!r} assigns to a fixed person but names none (person: NAME)"
            elif t.members and t.person not in t.members:
                yield (
                    (*path, "person"),
                    f"team {t.id!r}: the fixed person {t.person!r} is not one of its members ({', '.join(t.members)})",
                )
        elif t.person is not None:
            yield (
                (*path, "person"),
                f"team {t.id!r} assigns {t.assign.value}: a fixed person ({t.person!r}) needs assign: fixed",
            )
    known = sorted({t.id for t in d.teams})
    named = [("phases", i, p.id, p.team) for i, p in enumerate(d.phases)]
    named += [("stages", i, s.id, s.team) for i, s in enumerate(d.stages)]
    for key, i, part, team in named:
        if team is not None and team not in known:
            yield (
                (key, i, "team"),
                f"{key[:-1]} {part!r} refers to unknown team {team!r} (known: {known or 'none declared'})",
            )


def _timezone(d: ProcessDefinition) -> Iterator[Problem]:
    try:
        ZoneInfo(d.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield ("timezone",), f"unknown time zone {d.timezone!r} (use an IANA name such as 'Europe/Oslo')"


def _reachability(d: ProcessDefinition) -> Iterator[Problem]:
    """Every stage must be reachable from the first one by the moves the definition allows."""
    ids = [s.id for s in d.stages]
    won_from = set(d.won_from())
    first_post = d.post_sale[0].id if d.post_sale else None
    edges: dict[str, set[str]] = {sid: set() for sid in ids}
    for s in d.stages:
        part = [x.id for x in (d.post_sale if s.post_sale else d.pre_sale)]
        pos = part.index(s.id)
        nxt = d.next_stage(s.id)
        if s.moves.next.allowed and nxt is not None:
            edges[s.id].add(nxt)
        if s.moves.skip.allowed:
            edges[s.id].update(part[pos + 2 :])
        if s.moves.back.allowed:
            edges[s.id].update(part[:pos])
        if s.id in won_from and first_post is not None:
            edges[s.id].add(first_post)
    seen = {ids[0]}
    todo = [ids[0]]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    for i, sid in enumerate(ids):
        if sid not in seen:
            yield ("stages", i), (f"stage {sid!r} is unreachable: no allowed next, skip or back move leads to it")
    lost_from = set(d.lost_from())
    for i, s in enumerate(d.stages):
        if s.post_sale or s.id in won_from or s.id in lost_from:
            continue
        if not edges[s.id]:
            yield ("stages", i, "moves"), f"stage {s.id!r} is a dead end: no move, win or loss leaves it"
