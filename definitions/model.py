"""The process-definition language: what an operations team may say about a sales process.

The models only check the shape of each part; rules that relate parts to each other (unknown
stage referenced, unreachable stage, ...) live in `definitions.rules`, so that every problem in a
file is reported at once with the path where it stands.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from definitions import fact_types
from definitions.durations import Duration

IDENTIFIER = r"^[a-z][a-z0-9_-]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER, min_length=1, max_length=64)]


class StrictModel(BaseModel):
    """A misspelt key is an error, not silently ignored; a definition read is never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _fact_types_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema lists the registry's types as they are when it is asked for."""
    schema["enum"] = list(fact_types.KINDS)


class FactSpec(StrictModel):
    """A named, typed fact a rep must supply to leave a stage (an exit criterion); its type is a
    name in `definitions.fact_types.KINDS`."""

    fact: Identifier
    type: str = Field(default="text", json_schema_extra=_fact_types_schema)
    question: str = ""
    options: list[str] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _known_type(cls, name: str) -> str:
        try:
            fact_types.kind(name)
        except fact_types.UnknownFactType as exc:
            raise ValueError(str(exc)) from None
        return name

    @property
    def kind(self) -> fact_types.FactKind:
        """The registry's entry for the type; UnknownFactType if it has none."""
        return fact_types.kind(self.type)

    @field_validator("options")
    @classmethod
    def _options_unique(cls, options: list[str]) -> list[str]:
        if len(set(options)) != len(options):
            raise ValueError("options must not repeat")
        return options


class MoveRule(StrictModel):
    allowed: bool = True
    reason_required: bool = False


def _no_moves() -> MoveRule:
    return MoveRule(allowed=False)


class Moves(StrictModel):
    """Which moves a rep may make out of a stage, and whether each needs a reason."""

    next: MoveRule = Field(default_factory=MoveRule)
    skip: MoveRule = Field(default_factory=_no_moves)
    back: MoveRule = Field(default_factory=lambda: MoveRule(allowed=True, reason_required=True))


class Notify(StrEnum):
    owner = "owner"
    manager = "manager"


class Escalation(StrictModel):
    """One rung of the ladder: `after` counts from the previous rung (or the deadline)."""

    after: Duration
    notify: Notify = Notify.manager
    reassign_to: str | None = None


class Reminder(StrictModel):
    deadline: Duration
    escalations: list[Escalation] = Field(default_factory=list)


def _without_team(model: BaseModel, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
    """A part that names no team serialises exactly as before teams existed, so the versions of
    definitions without teams (hashes of this form) and the payloads of deals running them do
    not change."""
    data: dict[str, Any] = handler(model)
    if data.get("team", "") is None:
        data.pop("team")
    return data


class Stage(StrictModel):
    id: Identifier
    title: str = Field(min_length=1)
    phase: Identifier
    probability: float = Field(ge=0.0, le=1.0)
    exit_criteria: list[FactSpec] = Field(default_factory=list)
    reminder: Reminder | None = None
    moves: Moves = Field(default_factory=Moves)
    proposal_template: Identifier | None = None
    cadence: Identifier | None = None
    post_sale: bool = False
    description: str = ""
    team: Identifier | None = Field(default=None, description="the team that owns this stage (wins over its phase's)")

    @model_serializer(mode="wrap")
    def _no_team_key_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_team(self, handler)


class Phase(StrictModel):
    id: Identifier
    title: str = Field(min_length=1)
    team: Identifier | None = Field(default=None, description="the team that owns the phase's stages")

    @model_serializer(mode="wrap")
    def _no_team_key_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_team(self, handler)


class AssignRule(StrEnum):
    """How a deal entering a team's stage is given to one of its members."""

    fixed = "fixed"  # always the team's `person`
    round_robin = "round-robin"  # each member in turn, across the deals of the process
    fewest_open = "fewest-open"  # the member with the fewest open deals of the process


Person = Annotated[str, Field(min_length=1, max_length=200)]


class Team(StrictModel):
    """People who own some stages of the process. A deal entering one of those stages whose owner
    is not a member is handed over to a member, chosen by `assign`."""

    id: Identifier
    title: str = ""
    # an empty list is refused by `definitions.rules`, at its line, with a message that says why
    members: list[Person] = Field(default_factory=list, description="the people deals are handed to (owner names)")
    assign: AssignRule = Field(default=AssignRule.round_robin, description="fixed, round-robin or fewest-open")
    person: Person | None = Field(default=None, description="with assign: fixed, the member who gets every deal")


class WonOutcome(StrictModel):
    """From which stages a deal may be declared won (default: the last pre-sale stage)."""

    from_stages: list[Identifier] = Field(default_factory=list)


class LostOutcome(StrictModel):
    reasons: list[Identifier] = Field(min_length=1)
    from_stages: list[Identifier] = Field(default_factory=list)
    min_touches_before_lost: int = Field(default=0, ge=0)


class Outcomes(StrictModel):
    won: WonOutcome | None = None
    lost: LostOutcome | None = None


class Touch(StrictModel):
    channel: Identifier
    template: str = Field(min_length=1)
    delay: Duration


class StopCondition(StrEnum):
    replied = "replied"
    meeting_booked = "meeting_booked"
    deal_ended = "deal_ended"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


class Cadence(StrictModel):
    id: Identifier
    touches: list[Touch]
    min_touches: int = Field(default=5, ge=1)
    stop_on: list[StopCondition] = Field(
        default_factory=lambda: [
            StopCondition.replied,
            StopCondition.meeting_booked,
            StopCondition.deal_ended,
            StopCondition.unsubscribed,
            StopCondition.bounced,
        ]
    )


class ProposalTemplate(StrictModel):
    id: Identifier
    file: str = Field(min_length=1)
    formats: list[str] = Field(default_factory=lambda: ["markdown", "html"])


class RebuyKind(StrEnum):
    deep_selling = "deep-selling"
    up_selling = "up-selling"
    cross_selling = "cross-selling"


class Rebuy(StrictModel):
    kind: RebuyKind
    process: str = Field(min_length=1)
    delay: Duration


class Holidays(StrictModel):
    """The public holidays business days skip: named by country, pinned as plain dates at deploy.

    Operations write `country` (and `subdivision`); deploying fills in `first_year` and `dates`
    (`definitions.public_holidays`), so a pinned definition carries every date and a running deal
    never consults the `holidays` package, whose data changes from release to release. Dates
    written by hand are days off of the company's own, added to the country's; `remove` names
    holidays of the country the company works on (Good Friday in the Netherlands), whose dates
    pinning leaves out. Because pinning only ever adds the country's dates, less the removed
    ones, to those already listed, a pinned definition pins again to itself.
    """

    country: str | None = Field(
        default=None, description="ISO 3166-1 alpha-2 code, as the holidays package knows it: NL, NO, DE, ..."
    )
    subdivision: str | None = Field(default=None, description="a state or province of the country: DE BY, ...")
    years: int = Field(default=5, ge=0, le=50, description="how many years after the first one are pinned")
    first_year: int | None = Field(
        default=None, ge=1900, le=2200, description="the first year pinned; the deploy year unless written"
    )
    dates: list[date] = Field(
        default_factory=list, description="further days off (2026-12-24); once deployed, every day skipped"
    )
    remove: list[str] = Field(
        default_factory=list,
        description="holidays of the country that are working days here, by name: [Good Friday]",
    )

    @field_validator("country", mode="before")
    @classmethod
    def _country_code(cls, value: Any) -> Any:
        if value is False:  # YAML 1.1 reads an unquoted NO as a boolean
            raise ValueError("YAML read an unquoted NO as false: write country: 'NO'")
        return value.upper() if isinstance(value, str) else value

    @field_validator("dates")
    @classmethod
    def _dates_once(cls, dates: list[date]) -> list[date]:
        if len(set(dates)) != len(dates):
            raise ValueError("dates must not repeat")
        return sorted(dates)

    @field_validator("remove")
    @classmethod
    def _names_once(cls, names: list[str]) -> list[str]:
        if any(not n.strip() for n in names):
            raise ValueError("a holiday to remove needs its name")
        if len({n.strip().casefold() for n in names}) != len(names):
            raise ValueError("remove must not name a holiday twice")
        return names

    @model_serializer(mode="wrap")
    def _no_remove_key_when_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Holidays that remove none serialise exactly as before `remove` existed, so the versions
        of definitions already deployed do not change."""
        data: dict[str, Any] = handler(self)
        if not data.get("remove"):
            data.pop("remove", None)
        return data

    @property
    def last_year(self) -> int | None:
        return None if self.first_year is None else self.first_year + self.years


class ProcessDefinition(StrictModel):
    """A whole sales process. Stage order is the order of the list; nothing fixes its length."""

    name: Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
    title: str = ""
    description: str = ""
    timezone: str = "UTC"
    business_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    holidays: Holidays | None = None
    phases: list[Phase] = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)
    outcomes: Outcomes
    cadences: list[Cadence] = Field(default_factory=list)
    proposal_templates: list[ProposalTemplate] = Field(default_factory=list)
    rebuy: list[Rebuy] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list, description="who owns which phases and stages (handoffs)")
    deal_fields: list[Identifier] = Field(
        default_factory=lambda: ["customer", "title", "contact"],
        description="free-form fields a deal carries (--field K=V); proposal templates may use them",
    )

    @field_validator("business_days")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        if not days or any(d < 0 or d > 6 for d in days) or len(set(days)) != len(days):
            raise ValueError("business_days must list distinct weekdays 0 (Monday) .. 6 (Sunday)")
        return sorted(days)

    @model_serializer(mode="wrap")
    def _no_holidays_or_teams_key_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A process without holidays or teams serialises exactly as before they existed, so its
        version (a hash of this form) and the payloads of deals already running do not change."""
        data: dict[str, Any] = handler(self)
        if self.holidays is None:
            data.pop("holidays", None)
        if not self.teams:
            data.pop("teams", None)
        return data

    # --- derived views used by the engine; pure functions of the definition ---

    @property
    def holiday_dates(self) -> list[date]:
        """Every day off that business days skip, in order: plain dates, as pinned at deploy."""
        return list(self.holidays.dates) if self.holidays else []

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def cadence(self, cadence_id: str) -> Cadence:
        for cadence in self.cadences:
            if cadence.id == cadence_id:
                return cadence
        raise KeyError(cadence_id)

    def team(self, team_id: str) -> Team:
        for team in self.teams:
            if team.id == team_id:
                return team
        raise KeyError(team_id)

    def team_of(self, stage_id: str) -> Team | None:
        """The team that owns a stage: its own, else its phase's, else none."""
        stage = self.stage(stage_id)
        team_id = stage.team or next((p.team for p in self.phases if p.id == stage.phase), None)
        return None if team_id is None else self.team(team_id)

    def has_stage(self, stage_id: str) -> bool:
        return any(s.id == stage_id for s in self.stages)

    def index(self, stage_id: str) -> int:
        return [s.id for s in self.stages].index(stage_id)

    @property
    def pre_sale(self) -> list[Stage]:
        return [s for s in self.stages if not s.post_sale]

    @property
    def post_sale(self) -> list[Stage]:
        return [s for s in self.stages if s.post_sale]

    def won_from(self) -> list[str]:
        if self.outcomes.won is None:
            return []
        if self.outcomes.won.from_stages:
            return list(self.outcomes.won.from_stages)
        return [self.pre_sale[-1].id] if self.pre_sale else []

    def lost_from(self) -> list[str]:
        if self.outcomes.lost is None:
            return []
        if self.outcomes.lost.from_stages:
            return list(self.outcomes.lost.from_stages)
        return [s.id for s in self.pre_sale]

    def next_stage(self, stage_id: str) -> str | None:
        """The stage a completion leads to inside the same part (pre- or post-sale)."""
        stage = self.stage(stage_id)
        part = self.post_sale if stage.post_sale else self.pre_sale
        ids = [s.id for s in part]
        i = ids.index(stage_id)
        return ids[i + 1] if i + 1 < len(ids) else None


# what the deal workflow fills in for every template besides the deal's fields and facts
BUILTIN_PLACEHOLDERS = ("deal_id", "owner", "value", "process", "process_title", "version")


def template_names(d: ProcessDefinition) -> set[str]:
    """Every name the definition's templates (proposal templates and cadence touches) may use:
    the built-ins, its `deal_fields`, and the facts of the exit criteria of any of its stages.

    Deploying refuses any other name. Known is not the same as filled: a fact not recorded yet, or
    a field the deal was started without, has no value, and `definitions.templates` says what then.
    """
    facts = {f.fact for s in d.stages for f in s.exit_criteria}
    return set(BUILTIN_PLACEHOLDERS) | set(d.deal_fields) | facts


def json_schema() -> dict[str, Any]:
    return ProcessDefinition.model_json_schema()
