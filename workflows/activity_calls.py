"""How the deal workflow calls its activities: retry policies, and how their failures arrive."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,  # the log must get every event: retry until the database is back
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
    non_retryable_error_types=["PermanentChannelError"],
)
PROPOSAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["MissingProposalFacts", "InvalidTemplate"],
)
FOLLOW_ON_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownProcess"],
)

# a choice that cannot be made within about a minute is made without the shared state (from the
# deal's id), so a deal is never held at a handoff by a database that is down
HANDOFF_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
)

# how an activity's failure reaches the workflow: wrapped in ActivityError, or for a local
# activity, as the activity's own error (or its timeout) unwrapped
ACTIVITY_FAILURES = (ActivityError, ApplicationError, ActivityTimeoutError)


def error_text(exc: Exception) -> tuple[str, list[str]]:
    """An activity failure in words, and the facts it says are missing (for a proposal)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        missing = list(details.get("missing", [])) if isinstance(details, dict) else []
        return cause.message, missing
    return str(cause or exc), []
