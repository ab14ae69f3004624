"""A generic client that knows the API only from its OpenAPI document (schemathesis) sends it
generated requests, valid and not: no answer may be a server error, an undocumented status, or a
body that contradicts the document."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support.web import app_over, served

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


async def test_the_api_answers_generated_requests_as_its_document_says(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path
) -> None:
    st = Path(sys.executable).parent / "st"
    async with served(app_over(client)) as base:
        proc = await asyncio.create_subprocess_exec(
            str(st),
            "run",
            f"{base}/api/openapi.json",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "6",
            "--seed",
            "20261201",
            "--checks",
            CHECKS,
            "-H",
            "X-Dealflow-User: generated",
            "--report-dir",
            str(tmp_path),
            "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "passed" in text and "API Operations" in text
