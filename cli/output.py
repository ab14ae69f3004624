"""Stable shapes of the CLI's `--json` output (documented in docs/cli.md) and plain tables.

The JSON keys are part of the CLI's contract: they are built here explicitly rather than dumped
from internal models, so refactoring a model cannot silently change what scripts depend on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from client.api import DealStatus
from domain.commands import ActionResult
from store.deals import DealRow
from store.registry import Deployment


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def action_json(r: ActionResult) -> dict[str, Any]:
    return {
        "deal_id": r.deal_id,
        "request_id": r.request_id,
        "status": r.status,
        "stage": r.stage,
        "first_seq": r.first_seq,
        "last_seq": r.last_seq,
    }


def status_json(s: DealStatus) -> dict[str, Any]:
    st = s.state
    return {
        "deal_id": st.deal_id,
        "process": st.process,
        "version": st.version,
        "owner": st.owner,
        "value": st.value,
        "fields": st.fields,
        "status": st.status,
        "stage": st.stage,
        "stage_entered_at": _iso(st.stage_entered_at),
        "started_at": _iso(st.started_at),
        "ended_at": _iso(st.ended_at),
        "lost_reason": st.lost_reason,
        "facts": st.facts,
        "visits": st.visits,
        "last_seq": st.last_seq,
        "team": st.team,
        "experiment": st.experiment,
        "follows": st.follows,
        "follow_kind": st.follow_kind,
        "follow_ons": [
            {"kind": f.kind, "process": f.process, "due_at": _iso(f.due_at), "deal_id": f.deal_id, "error": f.error}
            for f in st.follow_ons
        ],
        "running": s.running,
        "missing_facts": [m.model_dump() for m in s.missing_facts],
        "log_failure": None if s.log_failure is None else s.log_failure.model_dump(mode="json"),
        "stale": s.stale,
        "pending": [p.model_dump(mode="json") for p in s.pending],
    }


def deal_row_json(r: DealRow) -> dict[str, Any]:
    return {
        "deal_id": r.deal_id,
        "process": r.process,
        "version": r.version,
        "owner": r.owner,
        "value": r.value,
        "status": r.status,
        "stage": r.stage,
        "stage_entered_at": _iso(r.stage_entered_at),
        "started_at": _iso(r.started_at),
        "ended_at": _iso(r.ended_at),
        "last_seq": r.last_seq,
        "touches": r.touches,
    }


def deployment_json(d: Deployment) -> dict[str, Any]:
    return {
        "name": d.name,
        "version": d.version,
        "content_hash": d.content_hash,
        "stages": d.stages,
        "deployed_by": d.deployed_by,
        "deployed_at": _iso(d.deployed_at),
        "source": d.source,
        "created": d.created,
    }


def emit(data: Any) -> None:
    """JSON output: indented, keys sorted, times as ISO 8601."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 or not _numeric(c) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("%s"))
        return True
    except ValueError:
        return False
