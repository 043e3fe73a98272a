"""/auth/password and /auth/verify: password reset and email verification (JSON API).

The links in the mails open the pages of `routers/pages.py` (or a deployment's own front
end), which post to these routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from gatehouse.server.http.deps import CurrentPrincipal, ServicesDep, client_ip
from gatehouse.server.http.schemas import (
    AcceptedOut,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)

router = APIRouter(prefix="/auth", tags=["recovery"])

# One answer for every address, known or not, mail configured or not.
FORGOT_ANSWER = AcceptedOut(
    detail="If an account has this address, a link to reset its password is on its way."
)
VERIFY_ANSWER = AcceptedOut(detail="A verification link is on its way to the account's address.")


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(
    body: ForgotPasswordRequest, request: Request, services: ServicesDep
) -> AcceptedOut:
    """Mail a reset link to the account with this address, if there is one.

    Always 202 with the same body, after the same work, whether or not an account has the
    address: the answer tells nothing. Limited per client address (429 `rate_limited`).
    """
    await services.recovery.forgot(str(body.email), ip=client_ip(request))
    return FORGOT_ANSWER


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(
    body: ResetPasswordRequest, request: Request, services: ServicesDep
) -> None:
    """Set a new password with the token of a reset link; every session of the user ends.

    A token that is not live (used, expired, superseded, altered, of another kind) answers
    400 `invalid_reset_token` and counts as a failed attempt of the client address.
    """
    await services.recovery.reset(body.token, body.new_password, ip=client_ip(request))


@router.post("/verify/request", status_code=status.HTTP_202_ACCEPTED)
async def request_verification(
    principal: CurrentPrincipal, request: Request, services: ServicesDep
) -> AcceptedOut:
    """Mail a verification link to the caller's current address (any credential of the
    user). 409 `email_missing` without an address, 409 `email_already_verified` when it is
    verified; limited per client address like forgot-password."""
    await services.recovery.request_verification(principal.user, ip=client_ip(request))
    return VERIFY_ANSWER


@router.post("/verify", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email(body: VerifyEmailRequest, request: Request, services: ServicesDep) -> None:
    """Mark the address verified with the token of a verification link (no bearer needed).

    400 `invalid_verification_token` for a token that is not live, or when the account's
    address changed since the link was sent; it counts as a failed attempt of the address.
    """
    await services.recovery.verify(body.token, ip=client_ip(request))
