"""`dealflow report --out DIR`: one self-contained HTML page with the metrics and their charts.

Charts are drawn with matplotlib and inlined as SVG, so the page opens anywhere, offline, and
prints sharply. Every figure on the page comes from `store.metrics` (SQL over the event log).
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from analytics.verdicts import Compared
from app import insights_service
from app.context import Context
from app.insights_service import InsightQuery
from app.readable import duration_text
from app.readable import pct as _pct
from definitions.loader import PinnedDefinition
from store import registry
from store.fact_outcomes import FactOutcomes
from store.follow_up_persistence import Persistence
from store.metrics import Filters, Metrics, compute
from store.rep_strength import RepStrength

_STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
h1{margin-bottom:.2rem} h2{margin-top:2.5rem;border-bottom:1px solid #d6dbe4;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{padding:.25rem .6rem;border-bottom:1px solid #e5e8ee}
th{text-align:left;background:#f4f6f9} td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:1rem} .charts svg{max-width:100%;height:auto} .muted{color:#667085}
"""


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def funnel_chart(pinned: PinnedDefinition, m: Metrics) -> str:
    stages = [s for s in m.stages if not pinned.definition.stage(s.stage).post_sale]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(stages) + 1))
    names = [pinned.definition.stage(s.stage).title for s in stages]
    entered = [s.entered for s in stages]
    ax.barh(names, entered, color="#3b6fd8")
    for i, s in enumerate(stages):
        label = f"{s.entered}" + (f"  ->  {s.conversion_any_later:.0%}" if s.conversion_any_later is not None else "")
        ax.text(s.entered, i, " " + label, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("deals that entered the stage (and the share that went further)")
    ax.set_title(f"Funnel: {pinned.name}")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlim(0, max([*entered, 1]) * 1.3)
    return _svg(fig)


def time_chart(pinned: PinnedDefinition, m: Metrics) -> str:
    stages = [s for s in m.stages if s.first_entry.median is not None]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(len(stages), 1) + 1))
    names = [pinned.definition.stage(s.stage).title for s in stages]
    hours = [(s.first_entry.median or 0) / 3600 for s in stages]
    p90 = [(s.first_entry.p90 or 0) / 3600 for s in stages]
    ax.barh(names, hours, color="#2f9e78", label="median")
    ax.scatter(p90, range(len(stages)), color="#1d2433", marker="|", s=200, label="p90", zorder=3)
    ax.invert_yaxis()
    ax.set_xlabel("hours in stage (first entry)")
    ax.set_title(f"Time in stage: {pinned.name}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def version_chart(pinned: PinnedDefinition, by_version: list[tuple[str, Metrics]]) -> str:
    stages = [s.stage for s in by_version[0][1].stages if not pinned.definition.stage(s.stage).post_sale]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(by_version)
    for k, (version, m) in enumerate(by_version):
        values = {s.stage: (s.conversion_any_later or 0) * 100 for s in m.stages}
        ax.bar(
            [i + k * width for i in range(len(stages))],
            [values.get(s, 0) for s in stages],
            width,
            label=f"{version} ({m.deals.deals} deals)",
        )
    ax.set_xticks([i + width * (len(by_version) - 1) / 2 for i in range(len(stages))], stages, rotation=30, ha="right")
    ax.set_ylabel("% converting to a later stage")
    ax.set_title(f"Conversion by version: {pinned.name}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=len(by_version), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = ""
    for row in rows:
        cells = "".join(
            f'<td class="n">{v}</td>' if isinstance(v, (int, float)) else f"<td>{html.escape(str(v))}</td>" for v in row
        )
        body += f"<tr>{cells}</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(pinned: PinnedDefinition, m: Metrics, by_version: list[tuple[str, Metrics]]) -> str:
    g = m.deals
    touches = (
        f" {_pct(g.share_five_or_more_touches)} of {g.deals_with_cadence} deals with a cadence got five or more"
        " touches."
        if g.deals_with_cadence
        else ""
    )
    summary = (
        f"<p>{g.deals} deals: {g.won} won, {g.lost} lost, {g.open} open. Win rate {_pct(g.win_rate)}; "
        f"cycle time median {duration_text(g.cycle_time.median)}; weighted pipeline {g.weighted_pipeline:,.0f}."
        f"{touches}</p>"
    )
    charts = [funnel_chart(pinned, m), time_chart(pinned, m)]
    if len(by_version) > 1:
        charts.append(version_chart(pinned, by_version))
    stages = _table(
        [
            "stage",
            "entered",
            "completed",
            "skipped",
            "moved back",
            "lost",
            "conv. to next",
            "conv. later",
            "median",
            "p90",
            "SLA breaches",
        ],
        [
            [
                s.stage,
                s.entered,
                s.completed,
                s.skipped,
                s.moved_back,
                s.lost,
                _pct(s.conversion_strict),
                _pct(s.conversion_any_later),
                duration_text(s.first_entry.median),
                duration_text(s.first_entry.p90),
                s.sla_breaches,
            ]
            for s in m.stages
        ],
    )
    phases = _table(
        ["phase", "entered", "lost", "converted", "conversion", "median time"],
        [
            [p.phase, p.entered, p.lost, p.converted, _pct(p.conversion), duration_text(p.time_in_phase.median)]
            for p in m.phases
        ],
    )
    title = html.escape(pinned.definition.title or pinned.name)
    return (
        f"<h2>{title} <span class='muted'>({html.escape(pinned.name)})</span></h2>{summary}"
        f"<div class='charts'>{''.join(charts)}</div>{stages}{phases}"
    )


async def write_report(c: Context, out: Path, *, deal_prefix: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = sorted({d.name for d in await registry.list_all(c.pool)})
    versions: dict[str, list[str]] = {}
    for d in await registry.list_all(c.pool):
        versions.setdefault(d.name, []).append(d.version)
    sections = []
    for name in names:
        pinned = await c.definition(name)
        overall = await compute(c.pool, pinned.definition, Filters(process=name))
        if overall.deals.deals == 0:
            continue
        by_version = []
        for version in versions[name]:
            vm = await compute(c.pool, pinned.definition, Filters(process=name, version=version))
            if vm.deals.deals:
                by_version.append((version, vm))
        sections.append(section(pinned, overall, by_version) + await insights_section(c, pinned))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dealflow report</title>"
        f"<style>{_STYLE}</style></head><body><h1>dealflow report</h1>"
        f"<p class='muted'>Generated {generated} from the event log. Definitions of every figure: see the README.</p>"
        + ("".join(sections) or "<p>No deals yet.</p>")
        + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# --- insights: phase strength per rep, which value of a fact wins, follow-up persistence ---------


def _rate(t: Compared) -> str:
    if t.rate is None or t.interval is None:
        return "-"
    return f"{t.rate:.0%} ({t.interval[0]:.0%}-{t.interval[1]:.0%})"


def _verdict_list(verdicts: list[str], alpha: float) -> str:
    if not verdicts:
        return f"<p class='muted'>No significant differences (family-wise alpha {alpha:g}, Holm).</p>"
    return "<ul class='verdicts'>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>"


def reps_html(r: RepStrength) -> str:
    tables = ""
    for ph in r.phases:
        rows: list[list[object]] = [
            [x.rep, x.entered, _rate(x.conversion), duration_text(x.median_seconds), x.conversion.verdict]
            for x in ph.reps
        ]
        tables += f"<h4>{html.escape(ph.phase)}</h4>" + _table(
            ["rep", "entered", "conversion (95% CI)", "median time", "against the rest of the team"], rows
        )
    return "<h3>Phase strength per rep</h3>" + _verdict_list(r.verdicts, r.alpha) + tables


def by_fact_html(f: FactOutcomes) -> str:
    headers = ["value", "deals"]
    if f.next_stage:
        headers.append(f"conversion out of {f.next_stage} (95% CI)")
    headers += ["win rate (95% CI)"]
    rows: list[list[object]] = []
    for v in f.values:
        row: list[object] = [v.label, v.deals]
        if v.conversion is not None:
            row.append(_rate(v.conversion))
        rows.append([*row, _rate(v.win_rate)])
    notes = "".join(f"<p class='muted'>{html.escape(n)}</p>" for n in f.notes)
    title = f"{f.stage}.{f.fact} ({f.type})"
    return f"<h4>{html.escape(title)}</h4>{_table(headers, rows)}{notes}" + (
        _verdict_list(f.verdicts, f.alpha) if f.verdicts else ""
    )


def persistence_html(p: Persistence) -> str:
    g = p.overall
    if not g.deals:
        return ""
    o = g.outcomes
    rows: list[list[object]] = [[r.touches, r.reply, r.won, r.lost, r.opted_out, r.open] for r in g.distribution]
    after = "".join(f"<li>after {x.after}: {html.escape(x.words)}</li>" for x in g.answers_after)
    keys = list(g.gave_up.after)
    gave_up = [["all reps", g.gave_up.deals, *[_pct(g.gave_up.shares[k]) for k in keys]]]
    gave_up += [[r.rep, r.gave_up.deals, *[_pct(r.gave_up.shares[k]) for k in keys]] for r in p.by_rep or []]
    return (
        "<h3>Follow-up persistence</h3>"
        f"<p>{g.deals} deals with a follow-up cadence: {o['reply']} replied, {o['won']} won, {o['lost']} lost, "
        f"{o['opted_out']} opted out, {o['open']} open.</p>"
        + _table(["touches before", "replied", "won", "lost", "opted out", "open"], rows)
        + "<p>How many touches buyers take to answer (Kaplan-Meier over touches: each deal counts while it was "
        "followed up; 95% intervals): a seller who gives up after k touches loses that share of the answers.</p>"
        f"<ul>{after}</ul><p>Given up (lost with no answer), by touches sent:</p>"
        + _table(["rep", "gave up", *[f"after {k}" for k in keys]], gave_up)
    )


async def insights_section(c: Context, pinned: PinnedDefinition) -> str:
    """The process's insights, for its section of the report (one query per answer)."""
    query = InsightQuery(process=pinned.name)
    facts = ""
    for stage, spec in insights_service.comparable_facts(pinned):
        found = await insights_service.by_fact(c, query, f"{stage}.{spec.fact}")
        if any(v.deals for v in found.values):
            facts += by_fact_html(found)
    which = f"<h3>Which value of a fact wins</h3>{facts}" if facts else ""
    reps = reps_html(await insights_service.reps(c, query))
    follow_up = persistence_html(await insights_service.follow_up(c, query, by_rep=True))
    return f"<div class='insights'>{reps}{which}{follow_up}</div>"
