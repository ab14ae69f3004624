"""The files a definition names, read from the definition's own directory and nowhere else.

A definition is often written by someone who may not read the server's disk: an ops user
uploading it through the web app, whose first deal would then render whatever file it named as a
proposal anyone can open. So a file a definition names is a relative path inside the directory
the definition lives in (for an upload: the fresh directory holding the uploaded files only), and
is refused otherwise: an absolute path, a `..` step, or a symbolic link that leads out. The texts
are read here once, at validate and deploy, and pinned into the version; nothing reads a template
file at run time.

Every refusal names the file as the definition wrote it and never the server's own path to it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


class TemplateFileError(ValueError):
    """A named file that is not read: why, in words that name it as the definition does."""


def _refusal(named: str) -> str | None:
    """Why the name itself is refused, before anything on disk is looked at."""
    if not named.isprintable():
        return f"template file {named!r}: the name holds a control character"
    if PurePosixPath(named).is_absolute() or PureWindowsPath(named).anchor:
        return f"template file {named!r} is an absolute path: name it relative to the definition's directory"
    if "\\" in named:
        return f"template file {named!r}: write '/' between folders, not '\\'"
    if ".." in PurePosixPath(named).parts:
        return f"template file {named!r} steps out of the definition's directory ('..'): name a file inside it"
    return None


def locate(base: Path, named: str) -> Path:
    """The real path of the file `named` inside `base`; `TemplateFileError` unless it is a file
    there, every symbolic link on the way followed and still inside."""
    refused = _refusal(named)
    if refused:
        raise TemplateFileError(refused)
    root = base.resolve()
    try:
        real = (root / named).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop of symbolic links, before Python 3.13
        raise TemplateFileError(f"template file {named!r} cannot be followed (a loop of symbolic links)") from None
    if not real.is_relative_to(root):
        raise TemplateFileError(
            f"template file {named!r} leads outside the definition's directory (a symbolic link): "
            "put the template itself beside the definition"
        )
    if not real.exists():
        raise TemplateFileError(f"template file {named!r} not found in the definition's directory")
    if not real.is_file():
        raise TemplateFileError(f"template file {named!r} is not a file")
    return real


def read(base: Path | None, named: str) -> str:
    """The text of the file `named` inside `base` (see `locate`), as UTF-8; a definition that
    came as text alone (`base` None) has no directory, so no file is read for it."""
    if base is None:
        raise TemplateFileError(
            _refusal(named) or f"template file {named!r}: the definition came without a directory to read it from"
        )
    path = locate(base, named)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateFileError(f"template file {named!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise TemplateFileError(f"cannot read template file {named!r}: {exc.strerror or type(exc).__name__}") from None
