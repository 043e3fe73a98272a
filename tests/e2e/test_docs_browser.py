"""/docs in a real browser: headless Chromium (Debian's), driven by Playwright, on a real server.

The page must work on a machine without internet and run only our own scripts: every
request it makes goes to the server (anything else is recorded, refused, and fails the
test), the CSP it sends reports no violation, and a person can authorise with a username
and password and run "Try it out" on GET /users/me.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect

from tests.e2e.harness import PASSWORD, Deployment, Server, register

TIMEOUT_MS = 20_000
# Collects CSP violations the page reports; injected by the browser, not by the page.
VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_swagger_ui_authorizes_and_tries_users_me_with_only_our_own_requests(
    deployment: Deployment, browser: Browser, tmp_path: Path
) -> None:
    """Open /docs, press Authorize, log in with username and password (the password flow against
    POST /oauth/token), run "Try it out" on GET /users/me: 200 with alice's username, no request
    to any other host, no CSP violation, no console error."""
    with deployment.serve() as server:
        with server.client() as client:
            register(client, "alice")
        context = browser.new_context()
        try:
            page = context.new_page()
            foreign, console_errors, requests = _watch(page, server)
            page.add_init_script(VIOLATIONS_SCRIPT)
            page.set_default_timeout(TIMEOUT_MS)

            page.goto(f"{server.base_url}/docs")
            _authorize(page)
            response_body = _try_users_me(page)
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
            violations = page.evaluate("window.__cspViolations")
        finally:
            context.close()

    assert '"username": "alice"' in response_body
    assert foreign == [], f"requests to other hosts: {foreign}"
    assert violations == [], f"CSP violations: {violations}"
    assert console_errors == [], f"console errors: {console_errors}"
    paths = {urlsplit(u).path for u in requests}
    assert {"/docs", "/openapi.json", "/oauth/token", "/users/me"} <= paths, paths
    assert any(p.startswith("/docs/assets/swagger-ui-bundle.js") for p in paths), paths


def _watch(page: Page, server: Server) -> tuple[list[str], list[str], list[str]]:
    """Refuse and record requests to other origins; record console errors and every URL."""
    origin = server.base_url
    foreign: list[str] = []
    console_errors: list[str] = []
    requests: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        requests.append(url)
        if url == origin or url.startswith(origin + "/") or url.startswith("data:"):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.route("**/*", route)
    page.on("console", on_console)
    return foreign, console_errors, requests


def _authorize(page: Page) -> None:
    page.get_by_role("button", name=re.compile("^Authorize")).first.click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_be_visible()
    dialog.locator("#oauth_username").fill("alice")
    dialog.locator("#oauth_password").fill(PASSWORD)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/oauth/token") as token:
        dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    assert token.value.status == 200, token.value.text()
    # Swagger UI shows "Logout" ("Remove authorization") once it holds a token.
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def _try_users_me(page: Page) -> str:
    operation = page.locator(
        ".opblock-get", has=page.locator('.opblock-summary-path[data-path="/users/me"]')
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/users/me") as me:
        operation.get_by_role("button", name="Execute").click()
    assert me.value.status == 200, me.value.text()
    assert me.value.request.headers["authorization"].startswith("Bearer ")
    live = operation.locator(".live-responses-table")
    row = live.locator("tr.response")
    expect(row.locator(".response-col_status")).to_have_text("200")
    body: str = row.locator(".response-col_description .microlight").first.inner_text()
    return body
