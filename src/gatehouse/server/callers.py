"""Who is calling: one answer for every credential a protected route accepts.

Three credentials name a caller, each checked against live state on every request (from
process memory when warm, see `sessions.cache`):

1. an API key (`ghk_...`, as a bearer token or in `X-API-Key`): the key must be live and its
   owner active; the caller acts with the key's effective scopes;
2. a client-credentials access token (a JWT with `client_id` and no `sid`): signature and
   claims, then the key that minted it must still be live and its owner active; the caller
   acts with the token's scopes that the key still allows;
3. a session's access token (a JWT with `sid`): signature and claims, then the session and
   the user must still be live; the caller acts with the user's roles.

A device token (a JWT with `kind: "device"`) names a machine, not a user: user routes refuse
it, and the device routes take it through `authenticate_device`, which checks that the
device is still registered and active.

API keys and client credentials are secrets a caller could guess, so their checks go
through the per-address limits (`limits.AbuseGuard.attempt`: a wrong one counts, an address
past its limit is refused); a successful check costs no limit-store round trip in the common
case (the guard's per-process memo). Access tokens are signed, so checking one never touches
the limit store.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.server.apikeys.format import looks_like_key
from gatehouse.server.apikeys.models import ApiKey
from gatehouse.server.apikeys.service import ApiKeyService
from gatehouse.server.devices.models import DeviceRecord
from gatehouse.server.devices.service import DeviceService
from gatehouse.server.errors import GatehouseError, InvalidAccessTokenError
from gatehouse.server.limits.guard import AbuseGuard
from gatehouse.server.sessions.models import Principal
from gatehouse.server.sessions.service import REFRESH_TOKEN_PREFIX, SessionService
from gatehouse.verifier.jwt import AccessTokenClaims


class Authenticator:
    """Turns a presented credential into the Principal behind it."""

    def __init__(
        self,
        *,
        sessions: SessionService,
        api_keys: ApiKeyService,
        devices: DeviceService,
        guard: AbuseGuard,
    ) -> None:
        self._sessions = sessions
        self._api_keys = api_keys
        self._devices = devices
        self._guard = guard

    async def authenticate(self, credential: str, *, ip: str | None) -> Principal:
        """The caller behind an access token or an API key presented from address `ip`.

        Raises:
            InvalidAccessTokenError: the credential names no live caller.
            RateLimitedError, LimitsUnavailableError: an API key from an address past its
                limit, or while the limit store is down.
        """
        if looks_like_key(credential):
            return await self.authenticate_key(credential, ip=ip)
        claims = await self._sessions.verify(credential)
        return await self.principal(claims)

    async def authenticate_device(self, token: str) -> DeviceRecord:
        """The live device behind a device token.

        Raises:
            InvalidAccessTokenError: not a valid device token, or its device is gone.
            DeviceSuspendedError, DeviceRevokedError: its device may not act now.
        """
        if looks_like_key(token):
            raise InvalidAccessTokenError("This request needs a device token.")
        return await self._devices.authenticate(await self._sessions.verify(token))

    async def authenticate_key(self, key: str, *, ip: str | None) -> Principal:
        """Raises: InvalidAccessTokenError for a key that is malformed or not live;
        RateLimitedError, LimitsUnavailableError (see `authenticate`)."""
        async with self._guard.attempt(ip):
            return _key_principal(*await self._api_keys.authenticate(key))

    async def authenticate_client(
        self, client_id: str, client_secret: str, *, ip: str | None
    ) -> Principal:
        """The caller behind OAuth client credentials (an API key split in two).

        Raises: InvalidClientError; RateLimitedError, LimitsUnavailableError.
        """
        async with self._guard.attempt(ip):
            found = await self._api_keys.authenticate_client(client_id, client_secret)
        return _key_principal(*found)

    async def revoke(self, token: str) -> None:
        """RFC 7009: end what `token` stands for, if anything; never say which it was."""
        if looks_like_key(token):
            await self._api_keys.revoke_presented(token)
        elif token.startswith(REFRESH_TOKEN_PREFIX):
            await self._sessions.revoke_by_refresh(token)
        else:
            try:
                claims = await self._sessions.verify(token)
            except InvalidAccessTokenError:
                return
            if claims.session_id is not None:
                await self._sessions.revoke_by_claims(claims)

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: `{"active": false}` for anything but a live access token, else its claims
        with the caller's current standing (`scope` is what it may act with now).

        Only access tokens are introspected: refresh tokens and API keys are inactive here.
        """
        if looks_like_key(token) or token.startswith(REFRESH_TOKEN_PREFIX):
            return {"active": False}
        try:
            claims = await self._sessions.verify(token)
            if claims.is_device:
                return await self._introspect_device(claims)
            caller = await self.principal(claims)
        except InvalidAccessTokenError:
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "sub": claims.subject,
            "username": caller.user.username,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "iss": claims.issuer,
            "kind": claims.kind,
            "aud": _audience(claims),
            "scope": " ".join(sorted(caller.roles)),
            "token_type": "bearer",
            "jti": claims.token_id,
        }
        if caller.client_id is not None:
            answer["client_id"] = caller.client_id
        if claims.session_id is not None:
            answer["sid"] = claims.session_id
        return answer

    async def _introspect_device(self, claims: AccessTokenClaims) -> dict[str, Any]:
        try:
            record = await self._devices.authenticate(claims)
        except GatehouseError:  # gone, suspended or revoked: inactive, whichever it is
            return {"active": False}
        return {
            "active": True,
            "kind": claims.kind,
            "sub": claims.subject,
            "device_id": str(record.device.id),
            "license_id": str(record.device.license_id) if record.device.license_id else None,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "iss": claims.issuer,
            "aud": _audience(claims),
            "scope": "",
            "token_type": "bearer",
            "jti": claims.token_id,
        }

    async def principal(self, claims: AccessTokenClaims) -> Principal:
        """The live caller behind verified access-token claims.

        Raises: InvalidAccessTokenError when its session or key is no longer live, or the
            token is a device's.
        """
        if claims.is_device:
            raise InvalidAccessTokenError("A device token does not act for a user.")
        client_id = claims.raw.get("client_id")
        if claims.session_id is not None or not isinstance(client_id, str):
            return await self._sessions.principal(claims)
        try:
            owner_id = UUID(claims.subject)
        except ValueError as exc:
            raise InvalidAccessTokenError from exc
        found = await self._api_keys.live_client(client_id, owner_id)
        if found is None:
            raise InvalidAccessTokenError(
                "The API key behind this access token is revoked or expired."
            )
        record, owner = found
        scope = claims.raw.get("scope")
        granted = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(
            user=owner,
            session_id=None,
            claims=claims,
            roles=granted & record.effective_scopes(owner),
            api_key=record,
        )


def _audience(claims: AccessTokenClaims) -> str | list[str]:
    return claims.audience[0] if len(claims.audience) == 1 else list(claims.audience)


def _key_principal(record: ApiKey, owner: User) -> Principal:
    return Principal(
        user=owner,
        session_id=None,
        claims=None,
        roles=record.effective_scopes(owner),
        api_key=record,
    )
