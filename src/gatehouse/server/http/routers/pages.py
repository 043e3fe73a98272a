"""/reset-password and /verify-email: the small pages the mailed links open.

Each page reads `?token=` from the link and puts it in a form; nothing happens on a GET
(link scanners and mail clients fetch links before the user sees them), so a GET never
verifies an address or uses a token. The user presses the form's button:

- without JavaScript, the form posts (`application/x-www-form-urlencoded`) to the page's
  own path (`POST /reset-password`, `POST /verify-email`), which answers a page with the
  outcome;
- with JavaScript, one small inline script (allowed by its SHA-256 hash in the CSP, no
  other script runs) sends the same form to the JSON API (`POST /auth/password/reset`,
  `POST /auth/verify`) and shows the outcome in place.

One message per outcome: done; the link is invalid or expired; the new password is weak
(with the policy's reason) or the two differ; too many attempts (with the wait); the
service is unavailable. This router renders those outcomes as HTML: it is the HTML
counterpart of `http/errors.py`, so it is the one router that turns domain errors into a
response itself (`_failure`).

Headers: a strict CSP (`default-src 'none'`, the script and the style by hash only,
`connect-src`/`form-action 'self'`, no framing), `Cache-Control: no-store`, and the base
`Referrer-Policy: no-referrer` (the page's URL holds the token; no other site may see it).
The form posts carry no cookie authority (the token is the credential), but they get the
same Origin / Sec-Fetch-Site check as a cookie login (`_check_form_origin`): another site
cannot post them.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from gatehouse.server.errors import (
    CsrfError,
    GatehouseError,
    InvalidResetTokenError,
    InvalidVerificationTokenError,
    RateLimitedError,
    UnavailableError,
    WeakPasswordError,
)
from gatehouse.server.http.browser import check_origin
from gatehouse.server.http.deps import ServicesDep, client_ip
from gatehouse.server.wiring import Services

router = APIRouter(include_in_schema=False)

MESSAGES = {
    "reset_done": "Your password has been changed. Every session of the account was signed "
    "out: sign in again with the new password.",
    "reset_invalid": "This password reset link is invalid or has expired. Ask for a new one.",
    "verify_done": "Your email address is verified. You can close this page.",
    "verify_invalid": "This verification link is invalid or has expired. Ask for a new one.",
    "mismatch": "The two passwords differ. Type the same new password twice.",
    "limited": "Too many attempts from your network. Try again in {seconds} seconds.",
    "unavailable": "The service is briefly unavailable. Try again in a moment.",
    "forbidden": "This form must be sent from this site's own page.",
}

_STYLE = """\
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f5f7fa;color:#1f2933;
margin:0;padding:2rem 1rem;line-height:1.5}
main{max-width:26rem;margin:0 auto;background:#fff;border:1px solid #d9e2ec;border-radius:8px;
padding:1.5rem 2rem}
h1{font-size:1.3rem;margin-top:0}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{box-sizing:border-box;width:100%;padding:.5rem;font-size:1rem;border:1px solid #9fb3c8;
border-radius:4px}
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;
background:#2f5fd0;color:#fff;cursor:pointer}
button:disabled{opacity:.6}
.done{color:#1d6b3a}
.error{color:#b42318}
[hidden]{display:none}
"""

_SCRIPT = """\
(function () {
  "use strict";
  var form = document.querySelector("form[data-api]");
  var status = document.getElementById("status");
  if (!form || !status || !window.fetch) { return; }
  function show(text, kind) { status.textContent = text; status.className = kind; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var fields = new FormData(form);
    var body = {token: fields.get("token")};
    if (form.dataset.kind === "reset") {
      if (fields.get("new_password") !== fields.get("confirm_password")) {
        show(form.dataset.mismatch, "error");
        return;
      }
      body.new_password = fields.get("new_password");
    }
    var button = form.querySelector("button");
    button.disabled = true;
    fetch(form.dataset.api, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 204) {
        form.hidden = true;
        show(form.dataset.done, "done");
        return null;
      }
      return response.json().catch(function () { return {}; }).then(function (problem) {
        if (response.status === 400) {
          form.hidden = true;
          show(form.dataset.invalid, "error");
        } else if (response.status === 429) {
          var wait = response.headers.get("Retry-After") || "60";
          show(form.dataset.limited.replace("{seconds}", wait), "error");
        } else if (response.status === 422 && problem.errors && problem.errors.length) {
          show(problem.errors[0].reason, "error");
        } else {
          show(form.dataset.unavailable, "error");
        }
      });
    }).catch(function () {
      show(form.dataset.unavailable, "error");
    }).then(function () {
      button.disabled = false;
    });
  });
})();
"""


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE_CSP = (
    f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
<h1>{title}</h1>
{content}
</main>
<script>{script}</script>
</body>
</html>
"""

_RESET_FORM = """\
<p>Choose a new password for your account: at least 8 characters, not a common one.</p>
<form method="post" action="{action}" data-kind="reset" data-api="{api}" {messages}>
<input type="hidden" name="token" value="{token}">
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password"
 required minlength="8" maxlength="256">
<label for="confirm_password">New password, again</label>
<input id="confirm_password" name="confirm_password" type="password"
 autocomplete="new-password" required minlength="8" maxlength="256">
<button type="submit">Set the new password</button>
</form>
<p id="status" role="status" aria-live="polite" class="{status_class}">{status}</p>
"""

_VERIFY_FORM = """\
<p>Confirm that this email address is yours.</p>
<form method="post" action="{action}" data-kind="verify" data-api="{api}" {messages}>
<input type="hidden" name="token" value="{token}">
<button type="submit">Confirm my email address</button>
</form>
<p id="status" role="status" aria-live="polite" class="{status_class}">{status}</p>
"""

_OUTCOME = '<p id="status" role="status" class="{status_class}">{status}</p>\n'


def _check_form_origin(request: Request, services: Services) -> None:
    """http/browser.py's Origin rules for a form post from one of these pages.

    Under `Referrer-Policy: no-referrer` a browser sends `Origin: null` with a form post,
    even to its own origin, so `null` counts as no Origin: the post is then refused only
    for `Sec-Fetch-Site: cross-site` (a header no page can set). A foreign origin is
    refused as ever.

    Raises: CsrfError.
    """
    if request.headers.get("origin", "").strip().lower() == "null":
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise CsrfError
        return
    check_origin(request, services.settings)


def _render(title: str, content: str, status_code: int = 200) -> HTMLResponse:
    body = _PAGE.format(title=html.escape(title), style=_STYLE, script=_SCRIPT, content=content)
    return HTMLResponse(body, status_code=status_code, headers=dict(_HEADERS))


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _form(
    request: Request,
    template: str,
    *,
    kind: str,
    token: str,
    status: str = "",
    status_class: str = "",
) -> str:
    root = _root(request)
    messages = {
        "done": MESSAGES[f"{kind}_done"],
        "invalid": MESSAGES[f"{kind}_invalid"],
        "mismatch": MESSAGES["mismatch"],
        "limited": MESSAGES["limited"],
        "unavailable": MESSAGES["unavailable"],
    }
    path, api = (
        ("/reset-password", "/auth/password/reset")
        if kind == "reset"
        else ("/verify-email", "/auth/verify")
    )
    return template.format(
        action=html.escape(root + path, quote=True),
        api=html.escape(root + api, quote=True),
        messages=" ".join(
            f'data-{name}="{html.escape(text, quote=True)}"' for name, text in messages.items()
        ),
        token=html.escape(token, quote=True),
        status=html.escape(status),
        status_class=status_class,
    )


def _outcome(title: str, message: str, status_code: int, *, done: bool = False) -> HTMLResponse:
    content = _OUTCOME.format(status=html.escape(message), status_class="done" if done else "error")
    return _render(title, content, status_code)


def _failure(title: str, exc: GatehouseError) -> HTMLResponse:
    """The page for an error of a form post, like http/errors.py's answer for the API."""
    if isinstance(exc, InvalidResetTokenError):
        return _outcome(title, MESSAGES["reset_invalid"], 400)
    if isinstance(exc, InvalidVerificationTokenError):
        return _outcome(title, MESSAGES["verify_invalid"], 400)
    if isinstance(exc, RateLimitedError):
        message = MESSAGES["limited"].format(seconds=exc.retry_after)
        response = _outcome(title, message, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, CsrfError):
        return _outcome(title, MESSAGES["forbidden"], 403)
    if isinstance(exc, UnavailableError):
        response = _outcome(title, MESSAGES["unavailable"], 503)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    raise exc


_RESET_TITLE = "Reset your password"
_VERIFY_TITLE = "Confirm your email address"


@router.get("/reset-password")
async def reset_page(request: Request, token: str = "") -> HTMLResponse:
    """The new-password form for the token of a reset link (nothing is checked yet)."""
    if not token:
        return _outcome(_RESET_TITLE, MESSAGES["reset_invalid"], 400)
    return _render(_RESET_TITLE, _form(request, _RESET_FORM, kind="reset", token=token))


@router.post("/reset-password")
async def reset_submit(
    request: Request,
    services: ServicesDep,
    token: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    confirm_password: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """The reset form posted without JavaScript: the outcome as a page."""

    def refused(reason: str) -> HTMLResponse:
        # The form again, with the reason: the link is still usable.
        content = _form(
            request, _RESET_FORM, kind="reset", token=token, status=reason, status_class="error"
        )
        return _render(_RESET_TITLE, content, 422)

    try:
        _check_form_origin(request, services)
        if new_password != confirm_password:
            return refused(MESSAGES["mismatch"])
        await services.recovery.reset(token, new_password, ip=client_ip(request))
    except WeakPasswordError as exc:
        return refused(exc.message)
    except GatehouseError as exc:
        return _failure(_RESET_TITLE, exc)
    return _outcome(_RESET_TITLE, MESSAGES["reset_done"], 200, done=True)


@router.get("/verify-email")
async def verify_page(request: Request, token: str = "") -> HTMLResponse:
    """A button that confirms the address; a GET alone never verifies (link scanners)."""
    if not token:
        return _outcome(_VERIFY_TITLE, MESSAGES["verify_invalid"], 400)
    return _render(_VERIFY_TITLE, _form(request, _VERIFY_FORM, kind="verify", token=token))


@router.post("/verify-email")
async def verify_submit(
    request: Request, services: ServicesDep, token: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """The verification form posted without JavaScript: the outcome as a page."""
    try:
        _check_form_origin(request, services)
        await services.recovery.verify(token, ip=client_ip(request))
    except GatehouseError as exc:
        return _failure(_VERIFY_TITLE, exc)
    return _outcome(_VERIFY_TITLE, MESSAGES["verify_done"], 200, done=True)
