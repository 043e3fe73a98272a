"""GET /metrics: the Prometheus text exposition (`server/metrics.py` says what it holds).

Included only with `GATEHOUSE_METRICS_ENABLED=true` (the default), so that with `false` the
path is as unknown as any other (404). Left out of the OpenAPI schema: it is for a
scraper, not for API clients. It needs no credential, like `/healthz`: keep it off the
public side of a reverse proxy if its numbers are private to you.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gatehouse.server.http.deps import ServicesDep

router = APIRouter(tags=["ops"], include_in_schema=False)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    body = await services.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
