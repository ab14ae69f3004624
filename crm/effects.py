"""What an import sends at once, by the effects it chose: the dry run's count of messages.

Pure, from the planned deals and the definition, as the deal workflow decides it: with `all`, an
open deal notifies for every rung of its reminder ladder already due and starts its stage's
cadence (a buyer's touches); with `future` or `none`, nothing is sent for the past.
"""

from __future__ import annotations

from datetime import datetime

from crm.plan import PlannedDeal
from definitions.loader import PinnedDefinition
from domain.imports import Effects
from domain.reminders import ladder
from domain.state import fold


def messages_at_once(
    pinned: PinnedDefinition, deals: list[PlannedDeal], effects: Effects, now: datetime
) -> dict[str, int]:
    """Notifications to owners (reminders) and to managers or owners (escalations), and cadences
    started towards buyers, that starting these open deals sends at once."""
    counts = {"reminders": 0, "escalations": 0, "cadences": 0}
    if effects != "all":
        return counts
    d = pinned.definition
    for deal in deals:
        if deal.outcome is not None:
            continue
        told = deal.retold(pinned)
        for rung in ladder(d, fold(told)):
            if rung.due_at <= now:
                counts["reminders" if rung.level == 0 else "escalations"] += 1
        if d.stage(deal.stage).cadence:
            counts["cadences"] += 1
    return counts
