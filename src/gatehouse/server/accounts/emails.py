"""Email addresses: what is accepted, and the one form two addresses are compared in.

An address is checked and normalised by email-validator (syntax only, no DNS lookup):
the domain becomes lowercase Unicode (IDNA 2008, so `xn--mnchen-3ya.de` and `MÜNCHEN.de`
are one domain), the local part NFC. That normalised text is what is stored and shown.

For comparison (the unique `users.email_canonical`), the whole normalised address is also
case-folded (Unicode `casefold`, then NFC again): `Alice@Example.com`, `ALICE@example.com`
and `alice@EXAMPLE.COM` are one address; so are `Straße@` and `STRASSE@`. RFC 5321 lets a
server treat local parts case-sensitively, but no mail provider in common use does, and two
accounts that differ only in case would be a trap (one reset link for two people). Nothing
provider-specific is folded: dots and `+tags` in the local part stay significant.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from gatehouse.server.errors import InvalidEmailError

# RFC 5321 s4.5.3.1: at most 254 octets in a path, so no longer address can receive mail.
EMAIL_MAX_LENGTH = 254


def fold_email(text: str) -> str:
    """The comparison form of an already normalised address (case-folded, NFC)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def canonical_email(raw: str) -> tuple[str, str]:
    """Return `(normalised, canonical)` forms of an address: the first to store and show,
    the second to compare.

    Raises:
        InvalidEmailError: not a syntactically valid address (a bare domain, an IP
            literal, a quoted local part, too long).
    """
    if not raw or len(raw) > EMAIL_MAX_LENGTH * 4:
        raise InvalidEmailError(field="email")
    try:
        normalised = validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidEmailError(field="email") from None
    if len(normalised.encode("utf-8")) > EMAIL_MAX_LENGTH:
        raise InvalidEmailError(field="email")
    return normalised, fold_email(normalised)
