"""Public holidays in business days: named by country, pinned as dates at deploy, skipped by
reminder ladders and cadence touches, and never looked up again once a version is pinned."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml

from client.api import DealflowClient
from definitions.durations import Duration
from definitions.loader import (
    DefinitionError,
    PinnedDefinition,
    check_file,
    load_file,
    load_text,
    parse,
    pin,
    shipped,
)
from definitions.model import ProcessDefinition
from domain import decide, reminders
from domain.calendar import BusinessCalendar
from domain.commands import StartDeal
from domain.state import fold
from tests.support.cli import dealflow
from tests.support.web import app_over, http
from workflows.cadence import CadenceInput, touch_due

AMSTERDAM, OSLO = ZoneInfo("Europe/Amsterdam"), ZoneInfo("Europe/Oslo")
DEPLOYED = date(2026, 3, 1)  # the deploy date of every definition below, unless a test says otherwise

BASE: dict[str, Any] = {
    "name": "dutch",
    "timezone": "Europe/Amsterdam",
    "holidays": {"country": "NL"},
    "phases": [{"id": "p", "title": "Phase"}],
    "stages": [
        {
            "id": "a",
            "title": "A",
            "phase": "p",
            "probability": 0.2,
            "reminder": {"deadline": "5 business days", "escalations": [{"after": "1 business day"}]},
        },
        {"id": "b", "title": "B", "phase": "p", "probability": 0.6},
    ],
    "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
}


def _load(data: dict[str, Any], today: date = DEPLOYED, source: str = "dutch.yaml") -> PinnedDefinition:
    return load_text(yaml.safe_dump(data, sort_keys=False), source=source, today=today)


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def _calendar(country: str, timezone: str, subdivision: str | None = None) -> BusinessCalendar:
    spec = {"country": country} if subdivision is None else {"country": country, "subdivision": subdivision}
    return BusinessCalendar.of(_load(_with(holidays=spec, timezone=timezone)).definition)


def _one_business_day_after(cal: BusinessCalendar, local: datetime) -> datetime:
    return cal.add(local.astimezone(UTC), Duration.model_validate("1 business day")).astimezone(local.tzinfo)


# --- the days skipped ---------------------------------------------------------------------------


@pytest.mark.unit
def test_dutch_easter_monday_and_kings_day_are_not_business_days() -> None:
    nl = _calendar("NL", "Europe/Amsterdam")
    good_friday = datetime(2026, 4, 3, 10, 0, tzinfo=AMSTERDAM)
    # Saturday, Sunday, Easter Monday: Tuesday
    assert _one_business_day_after(nl, good_friday) == datetime(2026, 4, 7, 10, 0, tzinfo=AMSTERDAM)
    friday = datetime(2026, 4, 24, 10, 0, tzinfo=AMSTERDAM)
    assert _one_business_day_after(nl, friday) == datetime(2026, 4, 28, 10, 0, tzinfo=AMSTERDAM)  # not 27 April
    assert {date(2026, 4, 6), date(2026, 4, 27)} <= nl.holidays


@pytest.mark.unit
def test_kings_day_moves_to_26_april_when_the_27th_is_a_sunday() -> None:
    nl = BusinessCalendar.of(_load(BASE, today=date(2025, 1, 1)).definition)
    assert date(2025, 4, 27).weekday() == 6
    assert date(2025, 4, 26) in nl.holidays and date(2025, 4, 27) not in nl.holidays
    assert date(2026, 4, 27) in nl.holidays and date(2026, 4, 26) not in nl.holidays


@pytest.mark.unit
def test_norwegian_easter_monday_and_constitution_day_are_not_business_days() -> None:
    no = _calendar("NO", "Europe/Oslo")
    good_friday = datetime(2026, 4, 3, 10, 0, tzinfo=OSLO)
    assert _one_business_day_after(no, good_friday) == datetime(2026, 4, 7, 10, 0, tzinfo=OSLO)
    tuesday = datetime(2028, 5, 16, 10, 0, tzinfo=OSLO)  # 17 May 2028 is a Wednesday
    assert _one_business_day_after(no, tuesday) == datetime(2028, 5, 18, 10, 0, tzinfo=OSLO)
    plain = BusinessCalendar("Europe/Oslo")
    assert _one_business_day_after(plain, tuesday) == datetime(2028, 5, 17, 10, 0, tzinfo=OSLO)


@pytest.mark.unit
def test_a_subdivision_adds_its_own_holidays() -> None:
    bavaria, berlin = _calendar("DE", "Europe/Berlin", "BY"), _calendar("DE", "Europe/Berlin", "BE")
    epiphany = date(2027, 1, 6)  # a Wednesday: a holiday in Bavaria, not in Berlin
    assert epiphany in bavaria.holidays and epiphany not in berlin.holidays
    assert date(2027, 10, 3) in berlin.holidays  # German Unity Day, everywhere


@pytest.mark.unit
def test_hours_and_days_are_plain_lengths_even_over_holidays() -> None:
    nl = _calendar("NL", "Europe/Amsterdam")
    start = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)
    assert nl.add(start, Duration.model_validate("72 hours")) == start + timedelta(hours=72)
    assert nl.add(start, Duration.model_validate("3 days")) == start + timedelta(days=3)


# --- reminders and cadences ---------------------------------------------------------------------


def _ladder(d: ProcessDefinition, entered: datetime) -> list[datetime]:
    events = decide.start(StartDeal(deal_id="d1", owner="anna", actor="anna"), d, "v1", "h1", entered)
    return [rung.due_at for rung in reminders.ladder(d, fold(events))]


@pytest.mark.unit
def test_a_reminder_deadline_over_a_holiday_lands_one_business_day_later() -> None:
    with_holidays = _load(BASE).definition
    without = _load({k: v for k, v in BASE.items() if k != "holidays"}).definition
    thursday = datetime(2026, 4, 23, 9, 30, tzinfo=AMSTERDAM)  # 5 business days later: King's Day week
    plain = _ladder(without, thursday)
    skipping = _ladder(with_holidays, thursday)
    assert plain == [datetime(2026, 4, 30, 9, 30, tzinfo=AMSTERDAM), datetime(2026, 5, 1, 9, 30, tzinfo=AMSTERDAM)]
    assert skipping == [datetime(2026, 5, 1, 9, 30, tzinfo=AMSTERDAM), datetime(2026, 5, 4, 9, 30, tzinfo=AMSTERDAM)]


@pytest.mark.unit
def test_a_norwegian_reminder_skips_17_may() -> None:
    norwegian = _with(holidays={"country": "NO"}, timezone="Europe/Oslo")
    d = _load(norwegian).definition
    without = _load({k: v for k, v in norwegian.items() if k != "holidays"}).definition
    monday = datetime(2028, 5, 15, 9, 0, tzinfo=OSLO)
    assert _ladder(without, monday)[0] == datetime(2028, 5, 22, 9, 0, tzinfo=OSLO)
    assert _ladder(d, monday)[0] == datetime(2028, 5, 23, 9, 0, tzinfo=OSLO)  # Wednesday 17 May skipped


@pytest.mark.unit
def test_cadence_touches_skip_the_holidays_their_input_carries() -> None:
    d = _load(BASE).definition
    inp = CadenceInput(
        deal_id="d1",
        parent_workflow_id="deal-d1",
        cadence_run="cadence-d1/c#1",
        cadence={"id": "c", "touches": [{"channel": "email", "template": "t", "delay": "1 business day"}]},
        timezone=d.timezone,
        business_days=d.business_days,
        holidays=d.holiday_dates,
        recipient="buyer",
    )
    friday = datetime(2026, 4, 24, 10, 0, tzinfo=AMSTERDAM)
    delay = Duration.model_validate("1 business day")
    assert touch_due(friday, delay, inp.calendar, 1.0) == datetime(2026, 4, 28, 10, 0, tzinfo=AMSTERDAM)
    assert touch_due(friday, delay, BusinessCalendar.of(d), 1.0) == touch_due(friday, delay, inp.calendar, 1.0)
    # an input recorded before holidays existed has none, and replays as it ran
    recorded = inp.model_dump(mode="json")
    del recorded["holidays"]
    old = CadenceInput.model_validate(recorded)
    assert old.holidays == [] and touch_due(friday, delay, old.calendar, 1.0) == friday + timedelta(days=3)


# --- pinning ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_pinned_definition_carries_the_dates_of_its_window() -> None:
    pinned = _load(BASE)
    h = pinned.definition.holidays
    assert h is not None and (h.country, h.first_year, h.years, h.last_year) == ("NL", 2026, 5, 2031)
    assert h.dates == sorted(h.dates) and min(h.dates) == date(2026, 1, 1) and max(h.dates).year == 2031
    body = pinned.model_dump_json()
    assert '"2026-04-27"' in body and '"2031-04-26"' in body  # King's Day 2031: the 27th is a Sunday


@pytest.mark.unit
def test_a_pinned_definition_keeps_its_dates_whatever_the_package_says_later(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = _load(BASE)
    stored = pinned.model_dump_json()  # what the registry stores and the deal workflow is started with

    def changed_data(*args: Any, **kwargs: Any) -> dict[date, str]:
        return {date(2026, 4, 28): "A holiday a later release invented"}

    monkeypatch.setattr(holidays, "country_holidays", changed_data)
    again = PinnedDefinition.model_validate_json(stored)
    assert again == pinned and again.content_hash == pinned.content_hash
    assert BusinessCalendar.of(again.definition) == BusinessCalendar.of(pinned.definition)
    # pinning the stored definition again adds the new data to the old, so it is a new version
    repinned = pin(again.definition, today=DEPLOYED)
    assert date(2026, 4, 28) in repinned.definition.holiday_dates and repinned.version != pinned.version
    # and the same file deployed under the changed package is a new version, never the old one changed
    redeployed = _load(BASE)
    assert redeployed.version != pinned.version
    assert redeployed.definition.holiday_dates == [date(2026, 4, 28)]


@pytest.mark.unit
def test_a_pinned_definition_pins_again_to_itself() -> None:
    pinned = _load(BASE)
    as_yaml = yaml.safe_dump(pinned.definition.model_dump(mode="json"))
    again = pin(parse(yaml.safe_load(as_yaml)), today=date(2030, 1, 1))
    assert again.version == pinned.version and again.definition == pinned.definition


@pytest.mark.unit
def test_the_same_file_in_the_same_year_is_the_same_version_and_the_hash_covers_the_dates() -> None:
    one, two = _load(BASE), _load(BASE, today=date(2026, 12, 31))
    assert one.version == two.version and one.content_hash == two.content_hash
    next_year = _load(BASE, today=date(2027, 1, 1))
    assert next_year.version != one.version  # the window moved: other dates, another version
    assert next_year.definition.holidays is not None and next_year.definition.holidays.first_year == 2027
    fixed = _with(holidays={"country": "NL", "first_year": 2026})
    assert _load(fixed, today=date(2029, 6, 1)).version == one.version  # a written first year pins it
    longer = _with(holidays={"country": "NL", "years": 6})
    assert _load(longer).version != one.version
    spelt = _with(holidays={"country": "nl"})
    assert _load(spelt).version == one.version  # country codes are normalised to upper case
    own_day = _with(holidays={"country": "NL", "dates": [date(2026, 12, 24)]})
    assert _load(own_day).version != one.version


@pytest.mark.unit
def test_the_deploy_year_is_the_year_in_the_process_time_zone() -> None:
    # pinned with no date given: the loader reads the clock in the process's time zone
    pinned = load_text(yaml.safe_dump(BASE), source="dutch.yaml")
    assert pinned.definition.holidays is not None
    assert pinned.definition.holidays.first_year == datetime.now(AMSTERDAM).year


@pytest.mark.unit
def test_own_days_off_without_a_country_do_not_depend_on_the_deploy_year() -> None:
    data = _with(holidays={"dates": [date(2026, 12, 24), date(2026, 12, 31)]})
    one, two = _load(data), _load(data, today=date(2031, 1, 1))
    assert one.version == two.version
    assert one.definition.holidays is not None and one.definition.holidays.first_year is None
    cal = BusinessCalendar.of(one.definition)
    wednesday = datetime(2026, 12, 23, 9, 0, tzinfo=AMSTERDAM)
    assert _one_business_day_after(cal, wednesday) == datetime(2026, 12, 25, 9, 0, tzinfo=AMSTERDAM)


@pytest.mark.unit
def test_own_days_off_are_added_to_the_country() -> None:
    d = _load(_with(holidays={"country": "NL", "dates": [date(2026, 12, 24)]})).definition
    assert {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26)} <= set(d.holiday_dates)


@pytest.mark.unit
def test_definitions_without_holidays_keep_their_versions() -> None:
    """The versions deployed before holidays existed (README's demo output): unchanged."""
    versions = {p.stem: load_file(p).version for p in shipped()}
    assert versions["three-phase"] == "e5b1d33a3784" and versions["sales-factory"] == "60898f1727e8"
    plain = load_file(next(p for p in shipped() if p.stem == "three-phase")).definition
    assert "holidays" not in plain.model_dump(mode="json")


@pytest.mark.unit
def test_the_shipped_seven_stage_process_skips_norwegian_holidays() -> None:
    d = load_file(next(p for p in shipped() if p.stem == "seven-stage"), today=DEPLOYED).definition
    assert d.timezone == "Europe/Oslo" and d.holidays is not None and d.holidays.country == "NO"
    assert {date(2026, 4, 6), date(2026, 5, 17), date(2031, 5, 17)} <= set(d.holiday_dates)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"country": "XX"}, "holidays.country", "unknown country 'XX'"),
        ({"country": "NLD"}, "holidays.country", "ISO 3166-1 alpha-2"),
        ({"country": "DE", "subdivision": "Bayern"}, "holidays.subdivision", "unknown subdivision 'Bayern' of DE"),
        ({"country": "IS", "subdivision": "X"}, "holidays.subdivision", "known: none"),
        ({"subdivision": "BY"}, "holidays.subdivision", "a subdivision needs a country"),
        ({"country": False}, "holidays.country", "write country: 'NO'"),
        ({"country": "NL", "years": 51}, "holidays.years", "less than or equal to 50"),
        ({"country": "NL", "dates": ["2026-12-24", "2026-12-24"]}, "holidays.dates", "must not repeat"),
        ({"country": "NL", "colour": "orange"}, "holidays.colour", "unknown field 'colour'"),
    ],
)
@pytest.mark.unit
def test_bad_holidays_are_located_errors(spec: dict[str, Any], path: str, message: str) -> None:
    text = yaml.safe_dump(_with(holidays=spec), sort_keys=False)
    with pytest.raises(DefinitionError) as caught:
        load_text(text, source="dutch.yaml", today=DEPLOYED)
    problem = next((p for p in caught.value.problems if p.path == path and message in p.message), None)
    assert problem is not None, str(caught.value)
    lines = text.splitlines()
    assert problem.line is not None and lines[2] == "holidays:" and 4 <= problem.line <= 3 + len(spec) + 1
    assert str(problem).startswith(f"dutch.yaml:{problem.line}: {path}: ")


def test_the_workflows_never_import_the_holidays_package() -> None:
    """Its data changes between releases: a workflow that consulted it would not replay."""
    pinned = _load(BASE).model_dump_json()
    script = f"""
import sys
import workflows.deal, workflows.cadence, workflows.cadence_lifecycle, worker.run
from definitions.loader import PinnedDefinition
from domain.calendar import BusinessCalendar
pinned = PinnedDefinition.model_validate_json({pinned!r})
assert BusinessCalendar.of(pinned.definition).holidays
assert "holidays" not in sys.modules, "the workflows' modules imported holidays"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_deploying_twice_in_a_year_is_one_version_and_show_prints_the_window(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    name = f"dutch-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "dutch.yaml"
    path.write_text(yaml.safe_dump(_with(name=name), sort_keys=False))
    first = await dealflow(cli_env, "definitions", "deploy", str(path))
    assert first.code == 0, first.err
    again = await dealflow(cli_env, "definitions", "deploy", str(path))
    assert "already deployed (no change)" in again.out
    year = datetime.now(AMSTERDAM).year
    shown = await dealflow(cli_env, "definitions", "show", name)
    assert f"holidays NL {year}-{year + 5}: " in shown.out and "days off, pinned at deploy" in shown.out
    stored = json.loads((await dealflow(cli_env, "definitions", "show", name, "--json")).out)
    kings_day = date(year, 4, 27) if date(year, 4, 27).weekday() != 6 else date(year, 4, 26)
    assert kings_day.isoformat() in stored["definition"]["holidays"]["dates"]  # the registry keeps the dates

    path.write_text(yaml.safe_dump(_with(name=name, holidays={"country": "NL", "first_year": year + 1})))
    await dealflow(cli_env, "definitions", "deploy", str(path))
    versions = [
        d["version"]
        for d in json.loads((await dealflow(cli_env, "definitions", "list", "--json")).out)
        if d["name"] == name
    ]
    diff = await dealflow(cli_env, "definitions", "diff", name, *versions)
    assert f"holidays NL, {year}-{year + 5} -> NL, {year + 1}-{year + 6}" in diff.out, diff.out + diff.err


# --- removing a country's holiday, and a country far from the time zone --------------------------


@pytest.mark.unit
def test_a_holidays_block_removes_named_days() -> None:
    """Good Friday is in the Dutch calendar, but most Dutch companies work on it."""
    working = _load(_with(holidays={"country": "NL", "remove": ["Good Friday"]}))
    every = _load(BASE)
    h = working.definition.holidays
    assert h is not None and h.remove == ["Good Friday"]
    good_fridays = {date(2026, 4, 3), date(2027, 3, 26), date(2028, 4, 14)}
    assert good_fridays <= set(every.definition.holiday_dates)
    assert not good_fridays & set(working.definition.holiday_dates)
    assert set(every.definition.holiday_dates) - set(working.definition.holiday_dates) == {
        d
        for d in every.definition.holiday_dates
        if d.weekday() == 4 and date(d.year, 3, 20) <= d <= date(d.year, 4, 23)
    }
    # Thursday before Easter: Good Friday is now a business day; Easter Monday still is not
    thursday = datetime(2026, 4, 2, 10, 0, tzinfo=AMSTERDAM)
    cal = BusinessCalendar.of(working.definition)
    assert _one_business_day_after(cal, thursday) == datetime(2026, 4, 3, 10, 0, tzinfo=AMSTERDAM)
    assert _one_business_day_after(cal, thursday + timedelta(days=1)) == datetime(2026, 4, 7, 10, 0, tzinfo=AMSTERDAM)
    # named in the package's own language too, in any case; and a pinned definition pins to itself
    dutch = _load(_with(holidays={"country": "NL", "remove": ["goede VRIJDAG"]}))
    assert dutch.definition.holiday_dates == working.definition.holiday_dates
    assert pin(working.definition, today=date(2030, 1, 1)).version == working.version
    # a date written by hand stays, even on a removed holiday: it is the company's own day off
    own = _load(_with(holidays={"country": "NL", "remove": ["Good Friday"], "dates": [date(2026, 4, 3)]}))
    assert date(2026, 4, 3) in own.definition.holiday_dates and date(2027, 3, 26) not in own.definition.holiday_dates
    # holidays that remove nothing serialise as before `remove` existed: the same versions
    assert "remove" not in json.dumps(every.definition.model_dump(mode="json"))
    assert working.version != every.version


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"country": "NL", "remove": ["Boxing Day"]}, "holidays.remove[0]", "NL has no holiday named 'Boxing Day'"),
        ({"remove": ["Good Friday"]}, "holidays.remove", "it needs a country"),
        ({"country": "NL", "remove": ["Good Friday", "good friday"]}, "holidays.remove", "not name a holiday twice"),
        ({"country": "NL", "remove": [" "]}, "holidays.remove", "needs its name"),
    ],
)
@pytest.mark.unit
def test_removing_what_the_country_does_not_have_is_refused(spec: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(DefinitionError) as err:
        _load(_with(holidays=spec))
    assert any(p.path == path and message in p.message and p.line for p in err.value.problems), str(err.value)


def test_a_country_not_of_the_time_zone_is_warned_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "niger.yaml"
    path.write_text(yaml.safe_dump(_with(holidays={"country": "NE"}), sort_keys=False))
    checked = check_file(path, today=DEPLOYED)
    [warning] = checked.warnings
    assert (warning.path, warning.line) == ("holidays.country", 4)
    assert str(warning) == (
        f"{path}:4: holidays.country: country 'NE' (Niger) is not a country of the process's time zone "
        "Europe/Amsterdam (NL (Netherlands)): did you mean 'NL'?"
    )
    assert checked.pinned.definition.holidays is not None and checked.pinned.definition.holidays.country == "NE"
    for fine in (_with(), _with(timezone="UTC"), _with(timezone="Europe/Brussels")):
        path.write_text(yaml.safe_dump(fine, sort_keys=False))
        assert check_file(path, today=DEPLOYED).warnings == []
    path.write_text(yaml.safe_dump(_with(holidays={"country": "NE"}), sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "definitions", "validate", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0 and f"{path}: ok, dutch@" in done.stdout
    assert f"warning: {path}:4: holidays.country: country 'NE' (Niger)" in done.stderr


async def test_deploy_tells_the_warning_in_the_cli_and_the_api(
    cli_env: dict[str, str], client: DealflowClient, tmp_path: Path
) -> None:
    name = f"niger-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "niger.yaml"
    path.write_text(yaml.safe_dump(_with(name=name, holidays={"country": "NE"}), sort_keys=False))
    said = "holidays.country: country 'NE' (Niger) is not a country of the process's time zone Europe/Amsterdam"
    dry = await dealflow(cli_env, "definitions", "deploy", "--dry-run", str(path))
    assert dry.code == 0 and f"warning: {path}:4: {said}" in dry.err, dry.err
    done = await dealflow(cli_env, "definitions", "deploy", "--json", str(path))
    assert done.code == 0, done.err
    [deployed] = done.json()
    assert deployed["created"] and deployed["warnings"] == [f"{path}:4: {said} (NL (Netherlands)): did you mean 'NL'?"]
    async with http(app_over(client), **{"X-Dealflow-User": "ops"}) as api:
        body = {"filename": "niger.yaml", "yaml": path.read_text()}
        preview = await api.post("/api/v1/definitions/validate", json=body)
        again = await api.post("/api/v1/definitions", json=body)
    whole = f"niger.yaml:4: {said} (NL (Netherlands)): did you mean 'NL'?"
    assert preview.status_code == 200 and preview.json()["warnings"] == [whole]
    assert again.status_code == 201 and again.json()["warnings"] == preview.json()["warnings"]
