"""/reset-password and /verify-email as served: headers, forms, and the outcome of each post.

The pages in a real browser (JavaScript on and off) are tests/e2e/test_recovery_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

import httpx
import pytest

from gatehouse.server.clock import ManualClock
from gatehouse.server.http.routers.pages import MESSAGES
from tests.http.helpers import PASSWORD, bearer, login, register
from tests.http.mail import Mailbox, mail_settings, reset_mail, serving, token_in
from tests.http.mail_fixtures import mail_settings_fixture, mailbox_fixture  # noqa: F401 - pytest fixtures

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}


def _status(page: str) -> str:
    """The text of the page's one status line (the outcome message)."""
    found = re.search(r'<p id="status"[^>]*>(.*?)</p>', page, re.DOTALL)
    assert found is not None, page
    return found.group(1)


def _shown(key: str) -> str:
    """A message as the page shows it (HTML-escaped)."""
    return html.escape(MESSAGES[key])


async def _verification_token(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> tuple[str, dict[str, str]]:
    await register(client, email=EMAIL)
    pair = await login(client)
    await client.post("/auth/verify/request", headers=bearer(pair))
    return token_in((await mailbox.wait_for(1))[0]), pair


@pytest.mark.parametrize("path", ["/reset-password", "/verify-email"])
async def test_the_pages_are_self_contained_under_a_strict_csp(
    client: httpx.AsyncClient, path: str
) -> None:
    """HTML with a CSP that allows no source but its own inline script and style by hash
    (no 'unsafe-inline', no external host), no framing, no-store, no referrer; the page
    references no external asset."""
    response = await client.get(path, params={"token": "ghr_" + "a" * 43})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none';")
    assert "unsafe-inline" not in csp
    assert "http" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", csp)
    # Each inline block is allowed by the hash of exactly what the page holds, and nothing
    # else inline: one script, one style.
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", response.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}';" in csp
        assert response.text.count(f"<{tag}") == 1
    assert not re.search(r"\son[a-z]+=", response.text)  # no inline event handler
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert not re.search(r"(src|href)=\"?https?:", response.text)


async def test_opening_the_verification_link_verifies_nothing(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """GET /verify-email?token= (what a link scanner does) shows a button and leaves the
    address unverified; the token still works afterwards."""
    token, pair = await _verification_token(client, mailbox)
    page = await client.get("/verify-email", params={"token": token})
    assert page.status_code == 200
    assert f'value="{token}"' in page.text
    assert "<button" in page.text
    assert (await client.get("/users/me", headers=bearer(pair))).json()["email_verified"] is False
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 204


async def test_the_verification_form_posted_without_javascript_verifies_the_address(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """POST /verify-email as a form: 200 with the done message; posted again: 400 with the
    invalid-link message."""
    token, pair = await _verification_token(client, mailbox)
    done = await client.post("/verify-email", data={"token": token}, headers=SAME_ORIGIN)
    assert done.status_code == 200
    assert _status(done.text) == _shown("verify_done")
    assert (await client.get("/users/me", headers=bearer(pair))).json()["email_verified"] is True
    again = await client.post("/verify-email", data={"token": token}, headers=SAME_ORIGIN)
    assert again.status_code == 400
    assert _status(again.text) == _shown("verify_invalid")


async def test_a_form_post_with_origin_null_from_the_same_site_is_accepted(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """What Chromium sends for a form post under Referrer-Policy no-referrer (Origin: null,
    Sec-Fetch-Site: same-origin) goes through."""
    token, _ = await _verification_token(client, mailbox)
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    done = await client.post("/verify-email", data={"token": token}, headers=headers)
    assert done.status_code == 200


async def test_a_form_post_from_another_site_is_refused(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A cross-site form post (Sec-Fetch-Site, or a foreign Origin) gets a 403 page and
    uses nothing: the token still verifies afterwards."""
    token, _ = await _verification_token(client, mailbox)
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ):
        refused = await client.post("/verify-email", data={"token": token}, headers=headers)
        assert refused.status_code == 403
        assert _status(refused.text) == _shown("forbidden")
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 204


async def test_the_reset_form_sets_the_password(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """GET shows the form with the token; POSTing two equal strong passwords: 200 with the
    done message, and the new password logs in."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    page = await client.get("/reset-password", params={"token": token})
    assert f'value="{token}"' in page.text
    assert 'autocomplete="new-password"' in page.text
    done = await client.post(
        "/reset-password",
        data={"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        headers=SAME_ORIGIN,
    )
    assert done.status_code == 200
    assert _status(done.text) == _shown("reset_done")
    await login(client, password=NEW_PASSWORD)


@pytest.mark.parametrize(
    ("new", "confirm", "message"),
    [
        ("password123", "password123", "That password is too common."),
        ("short", "short", "Passwords have at least 8 characters."),
        (NEW_PASSWORD, NEW_PASSWORD + "!", html.escape(MESSAGES["mismatch"])),
    ],
)
async def test_the_reset_form_explains_a_refused_password_and_keeps_the_link(
    client: httpx.AsyncClient, mailbox: Mailbox, new: str, confirm: str, message: str
) -> None:
    """A weak or mismatched password: 422, the form again with the reason and the token;
    the old password still works and the link still does."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    refused = await client.post(
        "/reset-password",
        data={"token": token, "new_password": new, "confirm_password": confirm},
        headers=SAME_ORIGIN,
    )
    assert refused.status_code == 422
    assert _status(refused.text) == message
    assert f'value="{token}"' in refused.text
    await login(client, password=PASSWORD)
    ok = await client.post(
        "/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 204


async def test_the_reset_form_with_a_dead_link_says_so(client: httpx.AsyncClient) -> None:
    """An invalid token posted: 400 and the invalid-link message; no token at all in the
    link: the same message without a form."""
    refused = await client.post(
        "/reset-password",
        data={
            "token": "ghr_" + "x" * 43,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
        headers=SAME_ORIGIN,
    )
    assert refused.status_code == 400
    assert _status(refused.text) == _shown("reset_invalid")
    bare = await client.get("/reset-password")
    assert bare.status_code == 400
    assert _status(bare.text) == _shown("reset_invalid")
    assert "<form" not in bare.text


async def test_the_pages_say_when_the_address_is_rate_limited(
    database_url: str, tmp_path: Path, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Past the address's failed attempts: 429 with Retry-After and the wait in the page."""
    settings = mail_settings(database_url, tmp_path, mailbox, ip_failure_limit=1)
    async with serving(settings, clock) as (_, client):
        await client.post("/verify-email", data={"token": "x"}, headers=SAME_ORIGIN)
        limited = await client.post("/verify-email", data={"token": "x"}, headers=SAME_ORIGIN)
    assert limited.status_code == 429
    seconds = limited.headers["retry-after"]
    assert _status(limited.text) == html.escape(MESSAGES["limited"].format(seconds=seconds))


async def test_a_token_with_markup_is_escaped_in_the_page(client: httpx.AsyncClient) -> None:
    """Whatever the link's token is, it is an attribute value, never markup."""
    page = await client.get("/verify-email", params={"token": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    assert "&quot;&gt;&lt;script&gt;" in page.text
