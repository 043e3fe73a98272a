"""The texts of the mails Gatehouse sends, and how a deployment replaces them.

Each mail has three templates: `<name>.subject` (one line), `<name>.txt` (the plain-text
body) and `<name>.html` (its HTML alternative), for `password_reset` and `verify_email`.
The built-in ones ship in `gatehouse/server/mail/templates/`; a file of the same name in
`GATEHOUSE_MAIL_TEMPLATES_DIR` replaces that one file (the others stay built-in).

The syntax is Python's `string.Template`: `$name` or `${name}` is replaced, `$$` is a
literal `$`, and nothing else is interpreted: no expressions, loops or code, so a template
file cannot run anything. The placeholders are `$username`, `$email`, `$link`,
`$valid_for` (e.g. "30 minutes") and `$site` (the issuer URL). Every template is checked
when the server starts: one that uses another name, or a malformed `$`, stops it with a
message naming the file.

Values are HTML-escaped (quotes included) in the `.html` template, and line breaks are
taken out of every value in the subject.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

TEMPLATE_NAMES = ("password_reset", "verify_email")
PARTS = ("subject", "txt", "html")
PLACEHOLDERS = frozenset({"username", "email", "link", "valid_for", "site"})
# An override is a small text file; anything larger is a mistake worth refusing.
_MAX_TEMPLATE_BYTES = 256 * 1024
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")


class MailTemplateError(ValueError):
    """A template override that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailTemplates:
    """The templates in use: the built-in ones, each replaced by an override if present."""

    def __init__(self, overrides: Path | None = None) -> None:
        """Load and check every template (at start, so a bad override fails early).

        Raises:
            MailTemplateError: an override is unreadable, not UTF-8, too large, malformed,
                or uses an unknown placeholder; or the folder does not exist.
        """
        if overrides is not None and not overrides.is_dir():
            raise MailTemplateError(f"GATEHOUSE_MAIL_TEMPLATES_DIR {overrides} is not a folder")
        self._templates: dict[tuple[str, str], string.Template] = {}
        for name in TEMPLATE_NAMES:
            for part in PARTS:
                filename = f"{name}.{part}"
                source = _read_override(overrides / filename) if overrides else None
                if source is None:
                    source = _builtin(filename)
                self._templates[name, part] = _checked(filename, source)

    def render(self, name: str, values: Mapping[str, str]) -> RenderedMail:
        """The subject and both bodies of mail `name` with `values` filled in.

        Raises:
            KeyError: `name` is not a template, or a placeholder has no value.
        """
        flat = {k: _LINE_BREAKS.sub(" ", v) for k, v in values.items()}
        escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
        subject = self._templates[name, "subject"].substitute(flat)
        return RenderedMail(
            subject=_LINE_BREAKS.sub(" ", subject).strip(),
            text=self._templates[name, "txt"].substitute(values),
            html=self._templates[name, "html"].substitute(escaped),
        )


def _builtin(filename: str) -> str:
    return (
        resources.files("gatehouse.server.mail").joinpath("templates", filename).read_text("utf-8")
    )


def _read_override(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        if path.stat().st_size > _MAX_TEMPLATE_BYTES:
            raise MailTemplateError(f"mail template {path} is larger than 256 KiB")
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        raise MailTemplateError(f"mail template {path} is not UTF-8 text") from None
    except OSError as exc:
        raise MailTemplateError(f"mail template {path} cannot be read ({exc.strerror})") from None


def _checked(filename: str, source: str) -> string.Template:
    template = string.Template(source)
    if not template.is_valid():
        raise MailTemplateError(
            f"mail template {filename} has a malformed placeholder (write $$ for a literal $)"
        )
    unknown = set(template.get_identifiers()) - PLACEHOLDERS
    if unknown:
        raise MailTemplateError(
            f"mail template {filename} uses unknown placeholders: "
            f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(PLACEHOLDERS))})"
        )
    return template
