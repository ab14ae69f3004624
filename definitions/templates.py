"""The one template language of dealflow: `{name}` placeholders and nothing else.

Proposal templates, cadence touches and notifications are written in it, checked by `check` when
a definition is deployed and filled by `render` when a message or document is made, so a text
that deploys renders by the same rules wherever it is used. Pure: no I/O, no Temporal, no clock,
so workflow code may call it.

Syntax. Texts are split with the standard library's `string.Formatter().parse` (the syntax of
`str.format`, which every existing definition already uses, so their versions do not change):

- `{name}` is a placeholder. A name is a letter or `_`, then letters, digits, `_` or `-`, like the
  ids of a definition (`customer`, `decision_maker`, `buying-steps`).
- `{{` and `}}` are a literal `{` and `}`.
- Everything else between braces is refused, with its line: attribute or index access (`{a.b}`,
  `{a[0]}`), conversions (`{a!r}`), format specs (`{a:>10}`), positional fields (`{}`, `{0}`),
  spaces inside braces, a brace left open or a lone `}`. A placeholder opens and closes on one
  line, so every problem has an exact line.

Known names. A definition's templates (its proposal templates and every touch of its cadences)
may use exactly the names of `definitions.model.template_names`:

- the built-ins `deal_id`, `owner`, `value`, `process`, `process_title`, `version`;
- the definition's `deal_fields` (by default `customer`, `title`, `contact`; a definition that
  lists its own has exactly those);
- the facts of the exit criteria of any of its stages.

Any other name is refused at deploy with file, line and name. The built-in notification texts
(`domain.notifications`) have their own fixed set of names, checked by the tests with `check`.

Missing values. `render` fills every placeholder or raises `MissingValues` naming every one that
has no value; a value that is absent or blank counts as missing. It never leaves a `{name}` in
its output, and it inserts values as they are: a value is never read as a template itself. What
follows when a known name has no value yet (a fact of a later stage, a field the deal was started
without) depends on what is being made:

- a proposal is not written, and the deal records `ProposalFailed` naming the missing facts;
- a touch is not sent, and the cadence records `TouchFailed` with the error naming the missing
  names, then goes on to its next touch. The send activity renders it, so the failure is that
  touch's and nothing half-filled reaches a buyer. Waiting would not help: a cadence works from
  the values the deal had when the cadence started.
- a notification always renders: every name it uses has a value or a stated fallback.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be rendered: malformed, or missing values."""


class TemplateSyntaxError(TemplateError):
    """Something between braces that is not a plain `{name}`, at a 1-based line of the text."""

    def __init__(self, line: int, message: str):
        self.line = line
        self.reason = message
        super().__init__(f"line {line}: {message}")


class MissingValues(TemplateError):
    """Placeholders without a value; `missing` names every one, in order of first use."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(f"no value for {', '.join(missing)}")


@dataclass(frozen=True)
class TemplateProblem:
    """One thing wrong with a template, found at deploy; `name` is set for unknown names."""

    line: int
    message: str
    name: str | None = None


# A parsed line: literal text and the placeholder that follows it (None at the end).
_Piece = tuple[str, str | None]


def _field(raw: str, conversion: str | None, spec: str | None) -> str:
    shown = "{" + raw + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    if conversion:
        return f"{shown}: conversions (!{conversion}) are not allowed; write {{{raw}}}"
    if spec:
        return f"{shown}: format specs (:{spec}) are not allowed; write {{{raw}}}"
    if raw == "" or raw.isdigit():
        return f"{shown}: a placeholder needs a name, such as {{customer}}"
    if "." in raw or "[" in raw:
        base = re.split(r"[.\[]", raw, maxsplit=1)[0]
        return f"{shown}: attribute and index access are not allowed; placeholders are plain names such as {{{base}}}"
    return f"{shown} is not a plain name (letters, digits, '_' and '-'; write {{{{ for a literal brace)"


def _malformed(exc: ValueError) -> str:
    text = str(exc)
    if "Single '}'" in text:
        return "a lone '}': write '}}' for a literal brace"
    if "Single '{'" in text or "expected '}'" in text:
        return "a '{' not closed on the same line: write '{{' for a literal brace"
    return f"a malformed placeholder ({text}): placeholders are plain {{name}}; write '{{{{' for a literal brace"


def _parse_line(line: str, number: int) -> list[_Piece]:
    try:
        parsed = list(_FORMATTER.parse(line))
    except ValueError as exc:
        raise TemplateSyntaxError(number, _malformed(exc)) from None
    pieces: list[_Piece] = []
    for literal, raw, spec, conversion in parsed:
        if raw is None:
            pieces.append((literal, None))
            continue
        # (`{a:}` parses exactly as `{a}` does, and renders the same: it is taken as `{a}`)
        if conversion or spec or not _NAME.fullmatch(raw):
            raise TemplateSyntaxError(number, _field(raw, conversion, spec))
        pieces.append((literal, raw))
    return pieces


def _lines(text: str) -> Iterator[tuple[int, str]]:
    # split on "\n" only, so that joining with "\n" gives back the text exactly ("\r" stays literal)
    return enumerate(text.split("\n"), start=1)


def _parse(text: str) -> list[list[_Piece]]:
    return [_parse_line(line, number) for number, line in _lines(text)]


def placeholders(text: str) -> list[tuple[str, int]]:
    """Every placeholder of `text` as `(name, line)`, in order, repeats included.

    Raises:
        TemplateSyntaxError: at the first line with anything but plain `{name}` placeholders.
    """
    return [
        (name, number) for number, pieces in enumerate(_parse(text), start=1) for _, name in pieces if name is not None
    ]


def names(text: str) -> list[str]:
    """The distinct placeholder names of `text`, in order of first use."""
    return list(dict.fromkeys(name for name, _ in placeholders(text)))


def render(text: str, values: Mapping[str, str]) -> str:
    """`text` with every placeholder replaced by its value, or an error and no text at all.

    Raises:
        TemplateSyntaxError: the text is malformed (see the module's syntax).
        MissingValues: one or more placeholders have no value, or a blank one; all are named.
    """
    parsed = _parse(text)
    used = dict.fromkeys(name for pieces in parsed for _, name in pieces if name is not None)
    missing = [name for name in used if not values.get(name, "").strip()]
    if missing:
        raise MissingValues(missing)
    return "\n".join(
        "".join(literal + ("" if name is None else values[name]) for literal, name in pieces) for pieces in parsed
    )


def unknown_message(name: str, known: Collection[str]) -> str:
    """How an unknown placeholder is reported, with the nearest known name when one is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown placeholder {name!r} ({hint}known: {', '.join(sorted(known))})"


def check(text: str, known: Collection[str]) -> list[TemplateProblem]:
    """Every problem of a template: each malformed line, and each unknown name once, at its
    first line. Empty when the text will render whenever all its names have values."""
    problems: list[TemplateProblem] = []
    reported: set[str] = set()
    for number, line in _lines(text):
        try:
            pieces = _parse_line(line, number)
        except TemplateSyntaxError as exc:
            problems.append(TemplateProblem(number, exc.reason))
            continue
        for _, name in pieces:
            if name is not None and name not in known and name not in reported:
                reported.add(name)
                problems.append(TemplateProblem(number, unknown_message(name, known), name))
    return problems


_MESSAGE_NAMES = ("subject", "sentence")


@dataclass(frozen=True)
class MessageText:
    """A message ready for a channel."""

    subject: str
    body: str


@dataclass(frozen=True)
class MessageTemplate:
    """A subject and a body in the template language.

    The body may also use `{subject}` (the rendered subject) and `{sentence}` (the subject ending
    with a full stop unless it already ends with '.', '?' or '!'), so that a message can repeat
    its subject without saying it twice in the source.
    """

    subject: str
    body: str

    def render(self, values: Mapping[str, str]) -> MessageText:
        """Both parts, or `MissingValues` naming everything either part lacks."""
        used = names(self.subject) + [n for n in names(self.body) if n not in _MESSAGE_NAMES]
        missing = [name for name in dict.fromkeys(used) if not values.get(name, "").strip()]
        if missing:
            raise MissingValues(missing)
        subject = " ".join(render(self.subject, values).split())  # a subject is one line, whatever the values
        sentence = subject if subject.endswith((".", "?", "!")) else subject + "."
        body = render(self.body, {**values, "subject": subject, "sentence": sentence})
        return MessageText(subject=subject, body=body)
