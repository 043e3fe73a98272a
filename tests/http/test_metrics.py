"""GET /metrics through the real app: route templates, statuses, the histogram, the gauges
read from the database, and the switch that turns it off.

The HTTP metrics live in the process's default registry, shared by every test (and both
backends), so the tests compare a scrape before with one after.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gatehouse.server.clock import ManualClock
from gatehouse.server.http.app import create_app
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.helpers import bearer, signup

SESSION_ID = "00000000-0000-4000-8000-000000000000"
SERVER_METRICS = (
    "gatehouse_http_requests",
    "gatehouse_http_request_duration_seconds",
    "gatehouse_logins",
    "gatehouse_lockouts",
    "gatehouse_rate_limited",
    "gatehouse_hash_queue_depth",
    "gatehouse_active_sessions",
    "gatehouse_mail_outbox_depth",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template_method_and_status(
    client: httpx.AsyncClient,
) -> None:
    """Requests count under their route's template (path parameters not expanded), method
    and status; unknown paths all count as route `unmatched`; no raw path becomes a label."""
    pair = await signup(client)
    before = await scrape(client)
    for _ in range(3):
        await client.get("/healthz")
    for _ in range(2):
        assert (await client.delete(f"/users/me/sessions/{SESSION_ID}")).status_code == 401
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200
    await client.get("/no/such/thing")
    await client.get(f"/another/{SESSION_ID}")
    after = await scrape(client)

    def delta(route: str, method: str, status: str) -> float:
        labels = {"route": route, "method": method, "status": status}
        name = "gatehouse_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("/healthz", "GET", "200") == 3
    assert delta("/users/me/sessions/{session_id}", "DELETE", "401") == 2
    assert delta("/users/me", "GET", "200") == 1
    assert delta("unmatched", "GET", "404") == 2
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not [r for r in routes if SESSION_ID in r or r.startswith("/no/")]


async def test_request_durations_form_a_histogram_per_route_and_method(
    client: httpx.AsyncClient,
) -> None:
    """Each request adds one observation to its route's histogram: the count and the +Inf
    bucket grow by the number of requests, the buckets are cumulative."""
    name = "gatehouse_http_request_duration_seconds"
    labels = {"route": "/readyz", "method": "GET"}
    before = await scrape(client)
    for _ in range(4):
        assert (await client.get("/readyz")).status_code == 200
    after = await scrape(client)

    assert value(after, f"{name}_count", **labels) - value(before, f"{name}_count", **labels) == 4
    assert value(after, f"{name}_sum", **labels) > value(before, f"{name}_sum", **labels)
    buckets = sorted(
        (float(dict(key)["le"]), count)
        for (sample, key), count in after.items()
        if sample == f"{name}_bucket"
        and {"route": "/readyz", "method": "GET"}.items() <= dict(key).items()
    )
    assert buckets[-1] == (float("inf"), value(after, f"{name}_count", **labels))
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)


async def test_every_server_metric_is_exposed(client: httpx.AsyncClient) -> None:
    """The scrape names every metric of the issue, each with its HELP line."""
    text = (await client.get("/metrics")).text

    for name in SERVER_METRICS:
        assert f"# HELP {name}" in text, name


async def test_active_sessions_is_read_from_the_database_and_cached_a_few_seconds(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """gatehouse_active_sessions counts unrevoked, unexpired sessions of all users; a scrape
    within 5 s of the last read answers the same number, a later one reads again."""
    alice = await signup(client, "alice")
    await signup(client, "bob")
    assert value(await scrape(client), "gatehouse_active_sessions") == 2

    assert (await client.post("/auth/logout", headers=bearer(alice))).status_code == 204
    assert value(await scrape(client), "gatehouse_active_sessions") == 2
    clock.advance(timedelta(seconds=6))
    assert value(await scrape(client), "gatehouse_active_sessions") == 1


async def test_mail_outbox_depth_counts_the_mails_waiting_to_be_sent(
    services: Services, clock: ManualClock
) -> None:
    """gatehouse_mail_outbox_depth is the number of outbox items not yet sent: two reset
    requests queue two (the app runs without its lifespan here, so no worker sends them)."""
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert value(await scrape(client), "gatehouse_mail_outbox_depth") == 0
        for address in ("nobody@example.com", "someone@example.com"):
            forgot = await client.post("/auth/password/forgot", json={"email": address})
            assert forgot.status_code == 202, forgot.text
        clock.advance(timedelta(seconds=6))
        assert value(await scrape(client), "gatehouse_mail_outbox_depth") == 2


async def test_metrics_is_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    """/metrics is for a scraper: the schema does not list it."""
    schema = (await client.get("/openapi.json")).json()

    assert "/metrics" not in schema["paths"]
    assert "/healthz" in schema["paths"]


async def test_metrics_disabled_answers_404_like_any_unknown_path(
    database_url: str, tmp_path: Path
) -> None:
    """GATEHOUSE_METRICS_ENABLED=false: GET /metrics is 404 problem+json `not_found`."""
    services = build_services(make_settings(database_url, tmp_path, metrics_enabled=False))
    app = create_app(services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/metrics")
    finally:
        await services.close()

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
