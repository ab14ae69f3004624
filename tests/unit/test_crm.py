"""Reading CRM exports (Salesforce, HubSpot, Pipedrive, a generic CSV) and planning their import:
every bad row named by file and line, an unmapped stage named with how many deals use it, no deal
ever half-taken, and the history retold as the events a deal run here records."""

from __future__ import annotations

import csv
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crm import mapping as mappings
from crm import sources
from crm.dates import BadInstant, parse_amount, parse_instant
from crm.plan import deal_id_for, plan
from crm.table import MAX_CELL, ExportError, ReadOptions
from definitions.loader import PinnedDefinition, load_file, shipped
from domain.imports import history_events, outcome_events
from domain.state import fold
from tests.support import TESTS

UTC_ZONE = ZoneInfo("UTC")
PIPEDRIVE_COLUMNS = ["ID", "Title", "Stage", "Status", "Deal created", "Won time", "Lost time", "Lost reason"]
PIPEDRIVE_COLUMNS += ["Owner", "Value"]
SEVEN: PinnedDefinition = load_file(next(p for p in shipped() if p.name == "seven-stage.yaml"))

SF_MAP = """
stages:
  Prospecting: prospecting
  "Needs Analysis": needs-assessment
  "Proposal/Price Quote": presentation
  "Perception Analysis": objection-handling
  Negotiation: closing
  "Closed Won": won
  "Closed Lost": lost
  "Id. Decision Makers": skip
lost_reasons:
  Price: no-budget
  "*": no-decision
owners:
  "005A": rita
  "005B": bob
"""


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return str(path)


def _map(tmp: Path, text: str = SF_MAP) -> mappings.Mapping:
    return mappings.load(_write(tmp, "stages.yaml", text))


def test_instants_and_amounts_as_crms_export_them() -> None:
    assert parse_instant("2026-03-01T09:30:00.000+0000", UTC_ZONE) == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert parse_instant("2026-03-01 09:30", ZoneInfo("Europe/Oslo")).utcoffset() is not None
    assert parse_instant("2026-03-01", UTC_ZONE) == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_instant("2026-03-01T09:30:00Z", UTC_ZONE).tzinfo is not None
    for bad in ("03/01/2026", "yesterday", ""):
        with pytest.raises(BadInstant):
            parse_instant(bad, UTC_ZONE)
    assert parse_amount("12,500.00") == 12500.0 and parse_amount("") is None and parse_amount("99.5") == 99.5
    for bad in ("12,5", "lots", "-3", "nan"):
        with pytest.raises(ValueError, match="amount"):
            parse_amount(bad)


def test_salesforce_opportunities_and_their_history_become_open_and_closed_deals(tmp_path: Path) -> None:
    opps = _write(
        tmp_path,
        "Opportunity.csv",
        """
        Id,Name,StageName,Amount,OwnerId,CreatedDate,CloseDate,IsClosed,IsWon,Loss_Reason__c
        006A,Fjord Tools,Negotiation,"25,000.00",005A,2026-01-05T10:00:00.000+0000,2026-04-30,false,false,
        006B,Acme,Closed Won,9000,005B,2026-01-06T10:00:00.000+0000,2026-02-20,true,true,
        006C,Globex,Closed Lost,1200,005A,2026-01-07T10:00:00.000+0000,2026-02-01,true,false,Price
        """,
    )
    history = _write(
        tmp_path,
        "OpportunityHistory.csv",
        """
        OpportunityId,StageName,Amount,Probability,CloseDate,CreatedDate,CreatedById
        006A,Prospecting,25000,10,2026-04-30,2026-01-05T10:00:00.000+0000,005A
        006A,Id. Decision Makers,25000,20,2026-04-30,2026-01-10T10:00:00.000+0000,005A
        006A,Needs Analysis,25000,30,2026-04-30,2026-01-20T10:00:00.000+0000,005A
        006A,Needs Analysis,26000,30,2026-04-30,2026-01-22T10:00:00.000+0000,005A
        006A,Proposal/Price Quote,25000,60,2026-04-30,2026-01-29T10:00:00.000+0000,005A
        006A,Perception Analysis,25000,70,2026-04-30,2026-02-03T10:00:00.000+0000,005A
        006A,Negotiation,25000,80,2026-04-30,2026-02-10T10:00:00.000+0000,005A
        006B,Prospecting,9000,10,2026-02-20,2026-01-06T10:00:00.000+0000,005B
        006B,Perception Analysis,9000,70,2026-02-20,2026-01-20T10:00:00.000+0000,005B
        006B,Negotiation,9000,80,2026-02-20,2026-02-01T10:00:00.000+0000,005B
        006B,Closed Won,9000,100,2026-02-20,2026-02-20T15:00:00.000+0000,005B
        006C,Prospecting,1200,10,2026-02-01,2026-01-07T10:00:00.000+0000,005A
        006C,Closed Lost,1200,0,2026-02-01,2026-02-01T09:00:00.000+0000,005A
        """,
    )
    parsed = sources.salesforce(opps, history, UTC_ZONE)
    assert parsed.problems == [] and parsed.rows == 16
    result = plan(parsed, _map(tmp_path), SEVEN, source="salesforce", mapping_name="stages.yaml")
    assert result.problems == [] and result.blocking == []
    assert result.starts_per_stage() == {"closing": 1}
    assert result.outcomes() == {"won": 1, "lost": 1}
    open_deal = result.open[0]
    assert open_deal.deal_id == "salesforce-006A" and open_deal.owner == "rita" and open_deal.value == 25000.0
    assert [v.stage for v in open_deal.history.visits] == [
        "prospecting",
        "needs-assessment",
        "presentation",
        "objection-handling",
        "closing",
    ]
    assert open_deal.history.visits[-1].entered_at == datetime(2026, 2, 10, 10, tzinfo=UTC)
    lost = next(d for d in result.closed if d.crm_id == "006C")
    assert lost.outcome is not None and (lost.outcome.status, lost.outcome.reason) == ("lost", "no-budget")
    assert lost.history.row == 4 and lost.history.file == "Opportunity.csv" and len(lost.history.sha256) == 64


def test_every_bad_row_is_named_with_its_file_and_line_and_its_deal_left_out(tmp_path: Path) -> None:
    opps = _write(
        tmp_path,
        "Opportunity.csv",
        """
        Id,Name,StageName,Amount,OwnerId,CreatedDate,CloseDate,IsClosed,IsWon
        006A,Good,Prospecting,100,005A,2026-01-05,,false,false
        006B,Bad date,Prospecting,100,005A,05/01/2026,,false,false
        006C,Bad amount,Prospecting,a lot,005A,2026-01-05,,false,false
        006D,Backwards,Negotiation,100,005A,2026-01-05,,false,false
        006E,Odd stage,Pitching,100,005A,2026-01-05,,false,false
        006F,Odd stage too,Pitching,100,005B,2026-01-05,,false,false
        """,
    )
    history = _write(
        tmp_path,
        "OpportunityHistory.csv",
        """
        OpportunityId,StageName,CreatedDate
        006D,Negotiation,2026-01-01
        """,
    )
    parsed = sources.salesforce(opps, history, UTC_ZONE)
    result = plan(parsed, _map(tmp_path), SEVEN, source="salesforce", mapping_name="stages.yaml")
    said = [str(p) for p in result.problems + result.blocking]
    assert any(p.startswith("Opportunity.csv:3: CreatedDate: '05/01/2026' is not a date") for p in said), said
    assert any(p.startswith("Opportunity.csv:4: Amount: 'a lot' is not an amount") for p in said), said
    backwards = "OpportunityHistory.csv:2: deal 006D: entered 'Negotiation'"
    assert any(p.startswith(backwards) and "backwards" in p for p in said), said
    assert "stages.yaml: CRM stage 'Pitching' is not mapped (used by 2 deals)" in " ".join(said)
    assert [d.crm_id for d in result.deals] == ["006A"], "no deal with a problem is taken, even in part"


def test_hubspot_stage_dates_give_the_history(tmp_path: Path) -> None:
    entered, exited = 'Date entered "{} (Sales)"', 'Date exited "{} (Sales)"'
    header = ["Record ID", "Deal Name", "Deal Stage", "Pipeline", "Deal owner", "Amount", "Create Date"]
    header += ["Close Date", "Closed Lost Reason", entered.format("Appointment"), exited.format("Appointment")]
    header += [entered.format("Contract"), exited.format("Contract"), entered.format("Closed lost")]
    rows = [
        "11,Open one,Contract,Sales,Rita R,5000,2026-02-01 09:00,,,"
        "2026-02-01 09:00,2026-02-10 09:00,2026-02-10 09:00,,",
        "12,Lost one,Closed lost,Sales,Bob B,700,2026-02-02 09:00,2026-03-01 10:00,Too expensive,"
        "2026-02-02 09:00,2026-03-01 10:00,,,2026-03-01 10:00",
        "13,Other pipeline,Contract,Renewals,Bob B,1,2026-02-02 09:00,,,,,,,",
        "14,Exits early,Contract,Sales,Bob B,1,2026-02-02 09:00,,,2026-02-05 09:00,2026-02-04 09:00,,,",
    ]
    with (tmp_path / "deals.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *(r.split(",") for r in rows)])
    export = str(tmp_path / "deals.csv")
    mapping = _map(
        tmp_path,
        """
        stages: {Appointment: prospecting, Contract: closing, "Closed lost": lost}
        lost_reasons: {"Too expensive": no-budget}
        owners: {"Rita R": rita, "Bob B": bob}
        """,
    )
    parsed = sources.hubspot(export, "Sales", UTC_ZONE)
    assert [str(p) for p in parsed.problems] == [
        "deals.csv:5: deal 14: left 'Appointment' at 2026-02-04T09:00:00+00:00, before entering it at "
        "2026-02-05T09:00:00+00:00: the history runs backwards"
    ]
    result = plan(parsed, mapping, SEVEN, source="hubspot", mapping_name="stages.yaml")
    assert result.starts_per_stage() == {"closing": 1} and result.outcomes() == {"lost": 1}
    lost = result.closed[0]
    assert lost.outcome is not None and lost.outcome.at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ExportError, match="no column 'Deal Stage'"):
        sources.hubspot(_write(tmp_path, "wrong.csv", "Record ID,Pipeline\n1,Sales\n"), "Sales", UTC_ZONE)


def test_pipedrive_gives_the_current_stage_and_the_generic_csv_the_whole_history(tmp_path: Path) -> None:
    export = _write(
        tmp_path,
        "pipedrive.csv",
        """
        {header}
        1,A,Presentation,open,2026-01-01 10:00:00,,,,Rita,100
        2,B,Closing,won,2026-01-01 10:00:00,2026-02-01 10:00:00,,,Bob,200
        3,C,Prospecting,maybe,2026-01-01 10:00:00,,,,Bob,200
        """.replace("{header}", ",".join(f"Deal - {c}" for c in PIPEDRIVE_COLUMNS)),
    )
    mapping = _map(tmp_path, "stages: {Presentation: presentation, Closing: closing, Prospecting: prospecting}\n")
    parsed = sources.pipedrive(export, UTC_ZONE)
    assert [str(p) for p in parsed.problems] == ["pipedrive.csv:4: Status 'maybe': expected open, won or lost"]
    result = plan(parsed, mapping, SEVEN, source="pipedrive", mapping_name="stages.yaml")
    assert result.starts_per_stage() == {"presentation": 1} and result.outcomes() == {"won": 1}
    assert result.open[0].owner == "Rita", "an owner the mapping does not name is kept as it is"

    changes = _write(
        tmp_path,
        "changes.csv",
        """
        deal_id,stage,entered_at,owner,value,budget,close_technique
        d1,prospecting,2026-01-01T09:00:00Z,rita,500,,
        d1,needs-assessment,2026-01-05T09:00:00Z,rita,500,4000,
        d1,presentation,2026-01-06T09:00:00Z,rita,500,,
        d1,objection-handling,2026-01-07T09:00:00Z,rita,500,,
        d1,closing,2026-01-09T09:00:00Z,rita,550,,urgency
        d1,won,2026-01-10T09:00:00Z,rita,550,,
        d2,prospecting,2026-01-02T09:00:00Z,bob,,,
        d2,needs-assessment,2026-01-01T09:00:00Z,bob,,,
        """,
    )
    parsed = sources.generic(changes, UTC_ZONE)
    assert [p.where for p in parsed.problems] == ["changes.csv:9"] and "backwards" in parsed.problems[0].message
    result = plan(parsed, mappings.identity(SEVEN.definition), SEVEN, source="csv", mapping_name="(process ids)")
    [won] = result.closed
    assert [v.stage for v in won.history.visits] == [
        "prospecting",
        "needs-assessment",
        "presentation",
        "objection-handling",
        "closing",
    ]
    assert won.history.visits[1].facts == {"budget": 4000.0}
    assert won.value == 550.0


def test_a_planned_history_folds_to_the_deal_the_export_describes(tmp_path: Path) -> None:
    export = _write(
        tmp_path,
        "changes.csv",
        """
        deal_id,stage,entered_at,owner
        d1,prospecting,2026-01-01T09:00:00Z,rita
        d1,closing,2026-01-09T09:00:00Z,rita
        d1,needs-assessment,2026-01-12T09:00:00Z,rita
        d1,lost,2026-01-20T09:00:00Z,rita
        """,
    )
    mapping = mappings.identity(SEVEN.definition).model_copy(update={"lost_reasons": {"*": "timing"}})
    [deal] = plan(sources.generic(export, UTC_ZONE), mapping, SEVEN, source="csv", mapping_name="-").deals
    d = SEVEN.definition
    told = history_events(
        d,
        deal.history,
        deal_id=deal.deal_id,
        version=SEVEN.version,
        content_hash=SEVEN.content_hash,
        owner=deal.owner,
        value=deal.value,
        fields=deal.fields,
    )
    assert deal.outcome is not None
    events = told + outcome_events(told, deal.history.visits[-1], deal.outcome)
    types = [e.type for e in events]
    assert types == [
        "DealStarted",
        "DealImported",
        "StageEntered",
        "StageSkipped",
        "StageEntered",
        "MovedBack",
        "StageEntered",
        "DealLost",
    ]
    state = fold(events)
    assert (state.status, state.lost_reason, state.owner) == ("lost", "timing", "rita")
    assert state.started_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert state.ended_at == datetime(2026, 1, 20, 9, tzinfo=UTC)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_a_history_that_moves_as_the_process_refuses_is_refused_by_line(tmp_path: Path) -> None:
    """seven-stage lets a deal skip ahead out of prospecting but not out of needs-assessment: the
    CRM's jump is a move no rep could make, so it is refused, not retold as a skip."""
    export = _write(
        tmp_path,
        "changes.csv",
        """
        deal_id,stage,entered_at,owner
        ok,prospecting,2026-01-01T09:00:00Z,rita
        ok,needs-assessment,2026-01-03T09:00:00Z,rita
        jumps,prospecting,2026-01-01T09:00:00Z,rita
        jumps,needs-assessment,2026-01-03T09:00:00Z,rita
        jumps,closing,2026-01-09T09:00:00Z,rita
        jumps,won,2026-01-10T09:00:00Z,rita
        """,
    )
    result = plan(
        sources.generic(export, UTC_ZONE), mappings.identity(SEVEN.definition), SEVEN, source="csv", mapping_name="-"
    )
    assert [d.crm_id for d in result.deals] == ["ok"]
    [refused] = result.problems
    assert refused.where == "changes.csv:4"
    assert "deal jumps: moves from 'needs-assessment' to 'closing' at 2026-01-09T09:00:00+00:00" in refused.message
    assert "stage 'needs-assessment' does not allow skipping ahead to 'closing'" in refused.message


def test_mappings_that_name_nothing_of_the_process_are_refused_in_words(tmp_path: Path) -> None:
    mapping = _map(tmp_path, "stages: {A: nowhere}\nlost_reasons: {X: bored}\n")
    said = mapping.check(SEVEN.definition)
    assert "stages: 'A' maps to 'nowhere', which is not a stage of seven-stage" in said[0]
    assert "lost_reasons: 'X' maps to 'bored', which is not a lost reason of seven-stage" in said[1]
    with pytest.raises(mappings.MappingError, match="unknown key 'stage': write stages, lost_reasons, owners"):
        _map(tmp_path, "stage: {A: b}\n")
    assert deal_id_for("hubspot", "12/34 x").startswith("hubspot-12-34-x-")
    assert deal_id_for("salesforce", "006A") == "salesforce-006A"


EXPORTS = TESTS / "exports"


def test_rows_cut_short_duplicated_or_orphaned_are_each_refused_by_file_and_line(tmp_path: Path) -> None:
    mapping = _map(tmp_path, "stages: {Appointment: prospecting, 'Closed lost': lost}\nowners: {'*': rita}\n")
    parsed = sources.hubspot(str(EXPORTS / "hubspot-bad.csv"), "Sales", UTC_ZONE)
    said = [str(p) for p in parsed.problems]
    assert (
        "hubspot-bad.csv:4: deal 2: Record ID '2' is also on line 3: one row per deal; neither row is imported" in said
    )
    assert any(s.startswith("hubspot-bad.csv:5: column 8 (Close Date): missing") for s in said), said
    assert any(s.startswith("hubspot-bad.csv:6:") and "quoted cell left open" in s for s in said), said
    assert [d.crm_id for d in plan(parsed, mapping, SEVEN, source="hubspot", mapping_name="m").deals] == ["1"]

    sf_map = _map(tmp_path, SF_MAP + "columns:\n  OwnerName: owner\n")
    options = ReadOptions(columns=sf_map.reader_columns())
    parsed = sources.salesforce(str(EXPORTS / "sf-opps.csv"), str(EXPORTS / "sf-history.csv"), UTC_ZONE, options)
    assert [str(p) for p in parsed.problems] == [
        "sf-history.csv:5: a history row of opportunity '006Z', which sf-opps.csv does not hold"
    ]
    result = plan(parsed, sf_map, SEVEN, source="salesforce", mapping_name="m")
    assert [str(p) for p in result.problems][1:] == [
        "sf-opps.csv:3: deal 006B: won from stage 'prospecting' (CRM stage 'Closed Won'), and seven-stage lets a deal"
        " be won only from 'closing': the history is cut short, or skips to the outcome"
    ]
    assert [(d.crm_id, d.owner) for d in result.deals] == [("006A", "rita")], "OwnerName read through columns:"


def test_a_semicolon_or_windows_1252_export_is_read_when_asked_and_hinted_when_not() -> None:
    path = str(EXPORTS / "pipedrive-semicolon-cp1252.csv")
    with pytest.raises(ExportError, match=r"pipedrive-semicolon-cp1252.csv:1: .*separated by ';'") as hinted:
        sources.pipedrive(path, UTC_ZONE, ReadOptions(encoding="cp1252"))
    assert (hinted.value.input, hinted.value.suggested) == ("delimiter", ";"), "each face names its own option"
    with pytest.raises(ExportError, match=r"csv:2: byte 0xe9 at column 6 is not utf-8-sig text") as undecoded:
        sources.pipedrive(path, UTC_ZONE, ReadOptions(delimiter=";"))
    assert undecoded.value.input == "encoding"
    [deal] = sources.pipedrive(path, UTC_ZONE, ReadOptions(delimiter=";", encoding="cp1252")).deals
    assert deal.name == "Café Ørsted"


def test_a_huge_cell_refuses_its_row_by_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "changes.csv"
    path.write_text(
        "deal_id,stage,entered_at,owner,note\n"
        f"d1,prospecting,2026-01-01T09:00:00Z,rita,{'x' * (MAX_CELL + 1)}\n"
        "d2,prospecting,2026-01-01T09:00:00Z,rita,short\n",
        encoding="utf-8",
    )
    parsed = sources.generic(str(path), UTC_ZONE)
    assert [p.where for p in parsed.problems] == ["changes.csv:2"] and "column 5 (note)" in parsed.problems[0].message
    assert [d.crm_id for d in parsed.deals] == ["d2"]
