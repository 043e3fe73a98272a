"""Opaque page cursors: the sort key of a page's last item, URL-safe base64 encoded.

Clients pass `next_cursor` back as `cursor` and must not read it; a cursor that does not
decode is an `InvalidInputError` on the `cursor` field.
"""

from __future__ import annotations

import base64
import binascii

from gatehouse.server.errors import InvalidInputError


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises: InvalidInputError when the cursor is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidInputError("The cursor is malformed.", field="cursor") from exc
