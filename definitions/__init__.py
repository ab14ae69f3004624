"""The process-definition language: schema, YAML loader, validation and content-hash versions."""

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
from definitions.model import FactSpec, FactType, ProcessDefinition, Stage

__all__ = [
    "DefinitionError",
    "DefinitionProblem",
    "FactSpec",
    "FactType",
    "PinnedDefinition",
    "ProcessDefinition",
    "Stage",
    "load_file",
    "load_text",
    "parse",
    "pin",
    "shipped",
]
