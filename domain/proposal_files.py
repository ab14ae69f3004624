"""A proposal's files as readers see them: by their place inside the proposals directory.

The proposal activity writes `<deal>/<template>-<version>.md` and `.html` under the proposals
directory and records those relative paths in `ProposalGenerated`. Deals that made proposals
before recorded the server's absolute paths, and their events stay as recorded (the log is
append-only and hash-chained), so every page and API answer shows an event through `readable`,
and the proposal page finds a file by `relative`: no server path reaches a reader either way.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from domain.events import DealEvent, ProposalGenerated

# <deal>/<template>-<version>.html: how deep a proposal lies inside the proposals directory
DEPTH = 2


def relative(path: str) -> str:
    """`path` as the proposals directory names it, whether recorded relative or absolute."""
    p = PurePosixPath(path)
    parts = p.parts[1:] if p.is_absolute() else p.parts
    return "/".join(parts[-DEPTH:])


def readable(event: DealEvent) -> DealEvent:
    """The event as a reader is shown it: a proposal's paths relative, everything else as recorded."""
    if isinstance(event, ProposalGenerated):
        return event.model_copy(update={"path": relative(event.path), "html_path": relative(event.html_path)})
    return event
