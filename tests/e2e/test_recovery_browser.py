"""The reset and verification pages in a real browser: headless Chromium (Debian's) on a real
`gatehouse serve`, with mail through a real local SMTP server (aiosmtpd) in this process.

Each flow starts from the link in a received message. With JavaScript, the page's hashed
inline script posts to the JSON API; without it, the form posts to the page and the server
answers the outcome page. Every page load is watched for CSP violations and console errors,
and every request must go to the server itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

from gatehouse.server.http.routers.pages import MESSAGES
from tests.e2e.harness import PASSWORD, Deployment, Server, bearer, login
from tests.http.mail import WAIT_SECONDS, Mailbox, link_in

TIMEOUT_MS = 15_000
NEW_PASSWORD = "a brand new passphrase"
VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


def _mail_env(box: Mailbox, **extra: str) -> dict[str, str]:
    return {
        "GATEHOUSE_SMTP_HOST": "127.0.0.1",
        "GATEHOUSE_SMTP_PORT": str(box.port),
        "GATEHOUSE_SMTP_SECURITY": "none",
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[Server]:
    """One server for the module's flows (each test uses accounts of its own)."""
    deployment = Deployment.fresh(tmp_path_factory.mktemp("recovery"))
    with deployment.serve(env=_mail_env(mailbox)) as running:
        yield running


def _message_to(box: Mailbox, address: str, count: int = 1) -> EmailMessage:
    """The `count`-th message received for `address` (waiting at most WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with box.lock:
            mine = [m for m in box.messages if m["To"] == address]
        if len(mine) >= count:
            return mine[count - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(mine)} of {count} messages for {address} arrived")
        time.sleep(0.05)


def _account(server: Server, name: str) -> str:
    """Register `name` with an address of its own; return the address."""
    address = f"{name}@example.com"
    with server.client() as client:
        response = client.post(
            "/auth/register", json={"username": name, "password": PASSWORD, "email": address}
        )
        assert response.status_code == 201, response.text
    return address


def _on_server(server: Server, link: str) -> str:
    """The link's path and query on the running server (the issuer in links is the default)."""
    parts = urlsplit(link)
    return f"{server.base_url}{parts.path}?{parts.query}"


def _reset_link(server: Server, box: Mailbox, address: str, count: int = 1) -> str:
    with server.client() as client:
        assert client.post("/auth/password/forgot", json={"email": address}).status_code == 202
    return _on_server(server, link_in(_message_to(box, address, count)))


def _verify_link(server: Server, box: Mailbox, name: str, address: str) -> str:
    with server.client() as client:
        token = login(client, name)
        assert client.post("/auth/verify/request", headers=bearer(token)).status_code == 202
    return _on_server(server, link_in(_message_to(box, address)))


def _verified(server: Server, name: str, password: str = PASSWORD) -> bool:
    with server.client() as client:
        me = client.get("/users/me", headers=bearer(login(client, name, password)))
        verified: bool = me.json()["email_verified"]
        return verified


class Watched:
    """A page whose foreign requests are refused and recorded, with its console errors and
    the CSP violations it reports."""

    def __init__(self, context: BrowserContext, server: Server) -> None:
        self.page: Page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.add_init_script(VIOLATIONS_SCRIPT)
        self.foreign: list[str] = []
        self.console_errors: list[str] = []
        self.paths: list[str] = []
        origin = server.base_url

        def route(route: Route) -> None:
            url = route.request.url
            self.paths.append(f"{route.request.method} {urlsplit(url).path}")
            if url.startswith(origin + "/"):
                route.continue_()
            else:
                self.foreign.append(url)
                route.abort()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(message.text)

        self.page.route("**/*", route)
        self.page.on("console", on_console)

    def status(self) -> str:
        text: str = self.page.locator("#status").inner_text()
        return text

    def assert_clean(self, *, expected_http_errors: bool = False) -> None:
        """No foreign request, no CSP violation; no console error at all unless the flow
        ends in an HTTP error (Chromium logs each 4xx of a fetch as a console error)."""
        assert self.foreign == [], self.foreign
        if self.page.evaluate("document.contentType") == "text/html":
            violations: Any = self.page.evaluate("window.__cspViolations || []")
            assert violations == [], violations
        csp_errors = [e for e in self.console_errors if "Content Security Policy" in e]
        assert csp_errors == [], csp_errors
        if not expected_http_errors:
            assert self.console_errors == [], self.console_errors


@contextlib.contextmanager
def _browser_context(browser: Browser, *, javascript: bool) -> Iterator[BrowserContext]:
    context = browser.new_context(java_script_enabled=javascript)
    try:
        yield context
    finally:
        context.close()


def test_the_reset_page_sets_a_new_password_with_javascript(
    server: Server, mailbox: Mailbox, browser: Browser
) -> None:
    """From the mailed link: type the new password twice, press the button; the script posts
    to /auth/password/reset, the page says it is done (the form gone), and the new password
    logs in. No CSP violation, no console error, no request elsewhere, and the server's log
    never holds the token."""
    address = _account(server, "rita")
    link = _reset_link(server, mailbox, address)
    with _browser_context(browser, javascript=True) as context:
        watched = Watched(context, server)
        page = watched.page
        page.goto(link)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password, again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the new password").click()
        expect(page.locator("#status")).to_have_text(MESSAGES["reset_done"])
        expect(page.locator("form")).to_be_hidden()
        watched.assert_clean()
        assert "POST /auth/password/reset" in watched.paths
    with server.client() as client:
        login(client, "rita", NEW_PASSWORD)
    token = link.rsplit("=", 1)[1]
    assert token not in server.log()


def test_the_reset_page_works_without_javascript(
    server: Server, mailbox: Mailbox, browser: Browser
) -> None:
    """JavaScript off: the form posts to /reset-password and the answer page says done."""
    address = _account(server, "sven")
    link = _reset_link(server, mailbox, address)
    with _browser_context(browser, javascript=False) as context:
        watched = Watched(context, server)
        page = watched.page
        page.goto(link)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password, again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the new password").click()
        expect(page.locator("#status")).to_have_text(MESSAGES["reset_done"])
        assert "POST /reset-password" in watched.paths
        watched.assert_clean()
    with server.client() as client:
        login(client, "sven", NEW_PASSWORD)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_reset_page_names_each_refusal(
    server: Server, mailbox: Mailbox, browser: Browser, javascript: bool
) -> None:
    """A common password: the policy's reason; two different passwords: the mismatch
    message; then the link used up elsewhere: the invalid-link message. The password
    never changed."""
    name = "tess" if javascript else "troy"
    address = _account(server, name)
    link = _reset_link(server, mailbox, address)
    with _browser_context(browser, javascript=javascript) as context:
        watched = Watched(context, server)
        page = watched.page
        page.goto(link)
        attempts = [
            ("password123", "password123", "That password is too common."),
            (NEW_PASSWORD, NEW_PASSWORD + "!", MESSAGES["mismatch"]),
        ]
        for new, again, message in attempts:
            page.get_by_label("New password", exact=True).fill(new)
            page.get_by_label("New password, again").fill(again)
            page.get_by_role("button", name="Set the new password").click()
            expect(page.locator("#status")).to_have_text(message)
        token = link.rsplit("=", 1)[1]
        with server.client() as client:
            used = client.post(
                "/auth/password/reset", json={"token": token, "new_password": "used elsewhere 1"}
            )
            assert used.status_code == 204
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password, again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the new password").click()
        expect(page.locator("#status")).to_have_text(MESSAGES["reset_invalid"])
        watched.assert_clean(expected_http_errors=True)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_verification_page_verifies_only_when_its_button_is_pressed(
    server: Server, mailbox: Mailbox, browser: Browser, javascript: bool
) -> None:
    """Opening the link verifies nothing; pressing the button does (by the script's POST
    /auth/verify, or without JavaScript by the form's POST /verify-email); pressing it again
    on a fresh load of the link says the link is no longer valid."""
    name = "vera" if javascript else "viktor"
    address = _account(server, name)
    link = _verify_link(server, mailbox, name, address)
    with _browser_context(browser, javascript=javascript) as context:
        watched = Watched(context, server)
        page = watched.page
        page.goto(link)
        expect(page.get_by_role("button", name="Confirm my email address")).to_be_visible()
        assert not _verified(server, name)
        page.get_by_role("button", name="Confirm my email address").click()
        expect(page.locator("#status")).to_have_text(MESSAGES["verify_done"])
        assert ("POST /auth/verify" if javascript else "POST /verify-email") in watched.paths
        watched.assert_clean()
        assert _verified(server, name)

        page.goto(link)
        page.get_by_role("button", name="Confirm my email address").click()
        expect(page.locator("#status")).to_have_text(MESSAGES["verify_invalid"])
        watched.assert_clean(expected_http_errors=True)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_pages_say_when_too_many_links_failed(
    tmp_path: Path, mailbox: Mailbox, browser: Browser, javascript: bool
) -> None:
    """With GATEHOUSE_IP_FAILURE_LIMIT=2, the third try of a bad link shows the
    rate-limited message with the wait the server sent."""
    deployment = Deployment.fresh(tmp_path)
    env = _mail_env(mailbox, GATEHOUSE_IP_FAILURE_LIMIT="2")
    with (
        deployment.serve(env=env) as limited,
        _browser_context(browser, javascript=javascript) as context,
    ):
        watched = Watched(context, limited)
        page = watched.page
        bad = f"{limited.base_url}/verify-email?token=ghv_{'x' * 43}"
        for _ in range(2):
            page.goto(bad)
            page.get_by_role("button", name="Confirm my email address").click()
            expect(page.locator("#status")).to_have_text(MESSAGES["verify_invalid"])
        page.goto(bad)
        page.get_by_role("button", name="Confirm my email address").click()
        expected = MESSAGES["limited"].split("{seconds}")
        status = page.locator("#status")
        expect(status).to_contain_text(expected[0])
        seconds = watched.status().removeprefix(expected[0]).removesuffix(expected[1])
        assert 1 <= int(seconds) <= 600
        watched.assert_clean(expected_http_errors=True)
