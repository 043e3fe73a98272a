"""Cookie sessions in a real browser: headless Chromium (Debian's) on a real `gatehouse serve`.

A page of the server's own origin logs in by cookie, calls protected routes with `fetch`,
and changes something with the CSRF header; a page of another origin (another port of the
same host, so the cookie rides along: SameSite does not separate ports) tries to make the
browser log the user out by fetch and by form post, and fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.e2e.harness import PASSWORD, Deployment, register

ATTACKER_PAGE = """<!doctype html>
<html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" action="{victim}/auth/logout-all"></form>
</body></html>
"""


@contextlib.contextmanager
def attacker_site(root: Path, victim: str) -> Iterator[str]:
    """A static site on another port of 127.0.0.1, serving one page that targets `victim`."""
    (root / "attack.html").write_text(ATTACKER_PAGE.format(victim=victim))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


LOGIN_AND_USE = """async ([username, password]) => {
  const login = await fetch("/auth/session", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username, password}),
  });
  const session = await login.json();
  const me = await fetch("/users/me");
  const change = (headers) => fetch("/users/me", {
    method: "PATCH",
    headers: {"Content-Type": "application/json", ...headers},
    body: JSON.stringify({email: "alice@example.com", current_password: password}),
  });
  const without = await change({});
  const withToken = await change({"X-CSRF-Token": session.csrf_token});
  return {
    login: login.status,
    bodyKeys: Object.keys(session).sort(),
    cookieVisible: document.cookie.includes("gatehouse_session"),
    me: me.status,
    meName: (await me.json()).username,
    without: without.status,
    withToken: withToken.status,
  };
}"""

ATTACK = """async (victim) => {
  const results = {};
  try {
    await fetch(victim + "/auth/logout-all",
                {method: "POST", credentials: "include", mode: "no-cors"});
    results.noCors = "sent";
  } catch (e) { results.noCors = "blocked"; }
  try {
    await fetch(victim + "/auth/logout-all", {
      method: "POST", credentials: "include", headers: {"X-CSRF-Token": "guess"},
    });
    results.withHeader = "answered";
  } catch (e) { results.withHeader = "blocked by CORS"; }
  document.getElementById("f").submit();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return results;
}"""


def test_a_browser_logs_in_by_cookie_and_another_origin_cannot_change_anything(
    deployment: Deployment, browser: Browser, tmp_path: Path
) -> None:
    """Same origin: cookie login (no token in the body, the cookie invisible to script), GET
    /users/me 200, PATCH without the CSRF header 403, with it 200. Another origin: a no-cors
    fetch and a form post reach the server with the cookie and get 403; a fetch with a guessed
    header is stopped by CORS; the session survives."""
    with (
        deployment.serve(env={"GATEHOUSE_COOKIE_SECURE": "false"}) as server,
        attacker_site(tmp_path, server.base_url) as attacker,
    ):
        with server.client() as client:
            register(client, "alice")
        context = browser.new_context()
        try:
            page = context.new_page()
            # The docs page: the server's origin, with a CSP that lets script fetch 'self'.
            page.goto(f"{server.base_url}/docs")
            used: dict[str, Any] = page.evaluate(LOGIN_AND_USE, ["alice", PASSWORD])
            assert used == {
                "login": 200,
                "bodyKeys": ["csrf_token", "expires_at", "session_id", "user"],
                "cookieVisible": False,
                "me": 200,
                "meName": "alice",
                "without": 403,
                "withToken": 200,
            }

            attack = context.new_page()
            attack.goto(f"{attacker}/attack.html")
            outcome = attack.evaluate(ATTACK, server.base_url)
            assert outcome == {"noCors": "sent", "withHeader": "blocked by CORS"}

            still = page.evaluate("async () => (await fetch('/users/me')).status")
            assert still == 200
        finally:
            context.close()
        log = _wait_for(server.log, lambda text: text.count("POST /auth/logout-all") >= 2)
    refused = [line for line in log.splitlines() if "POST /auth/logout-all" in line]
    assert len(refused) >= 2, log
    assert all('" 403' in line for line in refused), refused


def _wait_for(read: Any, done: Any, seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    text: str = read()
    while not done(text) and time.monotonic() < deadline:
        time.sleep(0.1)
        text = read()
    return text
