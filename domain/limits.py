"""The values a deal may record: text the event log can hold, in sizes the schema states.

A value reaches Temporal's history before it reaches the log (the history is the source of truth,
the log its record), so a value the log cannot hold would make a deal that Temporal knows and the
log never will. PostgreSQL's text and jsonb refuse NUL (U+0000), UTF-8 cannot encode a lone
surrogate, jsonb cannot hold NaN or infinity, and an index entry over about 2 kB is refused.
Every command, start and imported history is built from these types, so the client, the CLI, the
API (whose request models use them too, so that OpenAPI states the limits) and the workflow's
update validators refuse such a value, naming the field, before anything is recorded.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

# ids, names, stage ids, kinds, reasons: one line of text
MAX_NAME = 200
# a deal field's value (customer, region, ...) and a text fact
MAX_TEXT = 2000
# a note to a loss or a buyer's reply
MAX_NOTE = 4000
# fields, facts or rebuy kinds in one request
MAX_ENTRIES = 64
# whole numbers a fact may hold: exact as a JSON number in every reader (2**53)
MAX_WHOLE = 9_007_199_254_740_992


def storable(text: str) -> str:
    """`text` unchanged, or a ValueError saying why the log could not hold it."""
    if "\x00" in text:
        raise ValueError("contains a NUL character (U+0000), which the event log cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not a character), which the event log cannot hold") from None
    return text


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(storable)]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(storable)]
Note = Annotated[str, Field(max_length=MAX_NOTE), AfterValidator(storable)]

WholeFact = Annotated[StrictInt, Field(ge=-MAX_WHOLE, le=MAX_WHOLE)]
NumberFact = Annotated[StrictFloat, Field(allow_inf_nan=False)]
FactInput = StrictBool | WholeFact | NumberFact | Annotated[Text, Field(strict=True)]
FactsInput = Annotated[dict[Name, FactInput], Field(max_length=MAX_ENTRIES)]
FieldsInput = Annotated[dict[Name, Text], Field(max_length=MAX_ENTRIES)]
Kinds = Annotated[list[Name], Field(max_length=MAX_ENTRIES)]
