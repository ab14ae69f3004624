"""The process-definition language: schema, YAML loader, validation and content-hash versions."""

from definitions.fact_types import FactKind
from definitions.loader import (
    DefinitionError,
    DefinitionProblem,
    PinnedDefinition,
    load_file,
    load_text,
    parse,
    pin,
    shipped,
)
from definitions.model import FactSpec, ProcessDefinition, Stage

__all__ = [
    "DefinitionError",
    "DefinitionProblem",
    "FactKind",
    "FactSpec",
    "PinnedDefinition",
    "ProcessDefinition",
    "Stage",
    "load_file",
    "load_text",
    "parse",
    "pin",
    "shipped",
]
