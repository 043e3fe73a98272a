"""Keyset pagination over (created_at, id): the rows after a page's last one."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa


def after_clause(
    created_at: sa.ColumnElement[Any], row_id: sa.ColumnElement[Any], after: tuple[datetime, UUID]
) -> sa.ColumnElement[bool]:
    """`(created_at, id) > after`, spelled so that both engines use the index."""
    at, last_id = after
    return sa.or_(created_at > at, sa.and_(created_at == at, row_id > last_id))
