"""Self-contained audit bundles: everything needed to replay and verify a deal offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from audit.history import BUNDLE_FORMAT, AuditError, to_json
from audit.verify import LogRow


def build(
    deal_id: str, histories: list[WorkflowHistory], rows: list[LogRow], definition: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "deal_id": deal_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "definition": definition,
        "histories": [{"workflow_id": h.workflow_id, "history": to_json(h)} for h in histories],
        "event_log": [r.as_dict() for r in rows],
    }


def write(bundle: dict[str, Any], out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(bundle, indent=1, sort_keys=True), encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot write {out}: {exc}") from exc


def log_rows(bundle: dict[str, Any]) -> list[LogRow]:
    return [
        LogRow(r["seq"], json.dumps(r["payload"]), r.get("prev_hash"), r.get("hash"))
        for r in bundle.get("event_log", [])
    ]
