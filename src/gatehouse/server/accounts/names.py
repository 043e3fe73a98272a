"""Usernames, emails and role names: what is allowed and how each is canonicalised.

Usernames follow RFC 8265's UsernameCaseMapped profile (width-mapped, case-folded, NFC), so
`Alice`, `alice` and its fullwidth form are one account. The display form keeps the case
the user chose (UsernameCasePreserved). The profile refuses spaces and control characters.
"""

from __future__ import annotations

import re

import precis_i18n

from gatehouse.server.errors import InvalidRoleError, InvalidUsernameError

USERNAME_MAX_LENGTH = 64
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
MAX_ROLES = 32

_CASE_MAPPED = precis_i18n.get_profile("UsernameCaseMapped")
_CASE_PRESERVED = precis_i18n.get_profile("UsernameCasePreserved")


def canonical_username(raw: str) -> tuple[str, str]:
    """Return `(display, canonical)` forms of a username.

    Raises:
        InvalidUsernameError: the name is empty, too long, or has disallowed characters.
    """
    if not raw or len(raw) > USERNAME_MAX_LENGTH * 4:
        raise InvalidUsernameError("Usernames have 1 to 64 characters.", field="username")
    try:
        display = _CASE_PRESERVED.enforce(raw)
        canonical = _CASE_MAPPED.enforce(raw)
    except UnicodeError as exc:
        raise InvalidUsernameError(
            "Usernames may not contain spaces, control or unassigned characters.",
            field="username",
        ) from exc
    if not 1 <= len(canonical) <= USERNAME_MAX_LENGTH:
        raise InvalidUsernameError("Usernames have 1 to 64 characters.", field="username")
    return display, canonical


def canonical_roles(roles: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    """Validate role names: lowercase, start with a letter, at most 64 characters.

    Raises:
        InvalidRoleError: a role name does not match the pattern, or there are too many.
    """
    result = frozenset(roles)
    if len(result) > MAX_ROLES:
        raise InvalidRoleError("A user has at most 32 roles.", field="roles")
    for role in result:
        if not ROLE_PATTERN.fullmatch(role):
            raise InvalidRoleError(
                "Role names are lowercase letters, digits and _.:- , starting with a letter.",
                field="roles",
            )
    return result
