"""Reading the audit trail in tests: through `GET /admin/audit`, and the stored rows whole."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from gatehouse.server.storage.tables import audit_events
from gatehouse.server.wiring import Services
from tests.http.helpers import bearer


async def events(
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    services: Services | None = None,
    **filters: str,
) -> list[dict[str, Any]]:
    """Every event matching `filters`, newest first, following the pages to the end.

    With `services`, what the recorder has queued is written first (events recorded after
    the fact reach storage within a second; a test flushes instead of waiting)."""
    if services is not None:
        await services.audit_recorder.flush()
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {**filters, "limit": "200"}
    while True:
        response = await client.get("/admin/audit", params=params, headers=bearer(admin))
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["items"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


async def one(
    client: httpx.AsyncClient, admin: dict[str, Any], services: Services, event_type: str
) -> dict[str, Any]:
    """The one event of this type (after a flush); fails if there are none or several."""
    found = await events(client, admin, services, type=event_type)
    assert len(found) == 1, found
    return found[0]


async def stored_text(services: Services) -> str:
    """Every stored event, every column, as one string: to search for what must not be there."""
    await services.audit_recorder.flush()
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(audit_events))).all()
    return "\n".join(repr(tuple(row)) for row in rows)


async def stored_types(services: Services) -> list[str]:
    """The types of the stored events, oldest first (without a flush)."""
    async with services.db.read() as conn:
        rows = (
            await conn.execute(sa.select(audit_events.c.type).order_by(audit_events.c.time))
        ).all()
    return [row.type for row in rows]
