"""What a buyer receives for a cadence touch: the touch's template, from the definition, is the
subject line, and the message is a short letter around it.

The send activity calls `touch_text` (not the cadence workflow), so a touch whose template cannot
be rendered fails as that touch, with the error recorded in `TouchFailed`, and no workflow task
ever depends on a template's content.
"""

from __future__ import annotations

from collections.abc import Mapping

from definitions.templates import MessageTemplate, MessageText

# The letter says the subject again as a sentence; it greets the customer when the deal names
# one, and says hello otherwise (a definition need not declare a `customer` field, and a deal
# may be started without it), so the letter itself can never be what makes a touch fail.
LETTER = "{subject}\n\nDear {customer},\n\n{sentence}\n\nBest regards,\n{owner}\n"
LETTER_WITHOUT_NAME = "{subject}\n\nHello,\n\n{sentence}\n\nBest regards,\n{owner}\n"


def touch_text(template: str, values: Mapping[str, str]) -> MessageText:
    """The subject and body of a touch.

    Raises:
        TemplateSyntaxError: the template is malformed (a definition deployed before templates
            were checked).
        MissingValues: placeholders of the template (or the owner) have no value yet.
    """
    letter = LETTER if values.get("customer", "").strip() else LETTER_WITHOUT_NAME
    return MessageTemplate(subject=template, body=letter).render(values)
