"""What an export says about each deal, in the CRM's own terms, and where each fact came from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Source = Literal["salesforce", "hubspot", "pipedrive", "csv"]


class Origin(BaseModel):
    """A row of an export: the file (by name and content hash) and its line, 1 for the header."""

    model_config = ConfigDict(frozen=True)

    file: str
    sha256: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class StageChange(BaseModel):
    """The deal entered a CRM stage at an instant (and left it at `exited_at`, when the export says)."""

    stage: str
    entered_at: datetime
    exited_at: datetime | None = None
    origin: Origin


class CrmDeal(BaseModel):
    """One deal as the export has it: its CRM id and stages in the CRM's names."""

    source: Source
    crm_id: str
    name: str | None = None
    owner: str | None = None
    value: float | None = None
    created_at: datetime
    status: Literal["open", "won", "lost"] | None  # None: the mapping of its stage decides
    closed_at: datetime | None = None
    lost_reason: str | None = None
    current_stage: str | None = None  # the CRM stage an open deal is at
    history: list[StageChange] = []  # in time order
    facts: dict[str, str] = {}  # CRM stage.fact -> the raw value
    stage_facts: dict[str, str] = {}  # our stage.fact -> the raw value (the mapping file's `columns:`)
    origin: Origin  # the row the deal itself came from


class Problem(BaseModel):
    """A row (or a whole export) that cannot be taken, with the reason in words."""

    model_config = ConfigDict(frozen=True)

    where: str  # file:line, or the file alone
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class Parsed(BaseModel):
    deals: list[CrmDeal]
    problems: list[Problem]
    rows: int  # data rows read, headers not counted
    files: list[dict[str, str]]  # each file read: its name and the SHA-256 of its bytes
