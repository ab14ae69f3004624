"""What the Temporal UI and `temporal workflow list --query` can filter deals on.

The deal keeps Temporal's copy current with each append to the event log, so visibility trails
the deal as the projection does, at one upsert per batch.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair

with workflow.unsafe.imports_passed_through():
    from domain.state import DealState

DEAL_STAGE = SearchAttributeKey.for_keyword("DealStage")
DEAL_OWNER = SearchAttributeKey.for_keyword("DealOwner")
DEAL_STATUS = SearchAttributeKey.for_keyword("DealStatus")
PROCESS_NAME = SearchAttributeKey.for_keyword("ProcessName")
PROCESS_VERSION = SearchAttributeKey.for_keyword("ProcessVersion")
SEARCH_ATTRIBUTES = (DEAL_STAGE, DEAL_OWNER, DEAL_STATUS, PROCESS_NAME, PROCESS_VERSION)


def search_attributes(state: DealState) -> list[SearchAttributePair[str]]:
    return [
        SearchAttributePair(DEAL_STAGE, state.stage or state.status),
        SearchAttributePair(DEAL_OWNER, state.owner),
        SearchAttributePair(DEAL_STATUS, state.status),
        SearchAttributePair(PROCESS_NAME, state.process),
        SearchAttributePair(PROCESS_VERSION, state.version),
    ]


class SearchIndex:
    """The deal's search attributes as Temporal holds them for this run; `update` sends only
    what changed. Must be made inside the workflow (it reads the run's attributes)."""

    def __init__(self) -> None:
        held = workflow.info().typed_search_attributes
        self._indexed = [SearchAttributePair(key, held.get(key) or "") for key in SEARCH_ATTRIBUTES]

    def update(self, state: DealState) -> None:
        indexed = search_attributes(state)
        if indexed != self._indexed:
            changed = [new for new, old in zip(indexed, self._indexed, strict=True) if new != old]
            workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in changed])
            self._indexed = indexed
