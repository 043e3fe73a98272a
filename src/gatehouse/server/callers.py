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
"""

from __future__ import annotations

from uuid import UUID

from gatehouse.server.apikeys.format import looks_like_key
from gatehouse.server.apikeys.service import ApiKeyService
from gatehouse.server.errors import InvalidAccessTokenError
from gatehouse.server.sessions.models import Principal
from gatehouse.server.sessions.service import SessionService
from gatehouse.verifier import AccessTokenClaims


class Authenticator:
    """Turns a presented credential into the Principal behind it."""

    def __init__(self, *, sessions: SessionService, api_keys: ApiKeyService) -> None:
        self._sessions = sessions
        self._api_keys = api_keys

    async def authenticate(self, credential: str) -> Principal:
        """Raises: InvalidAccessTokenError for any credential that names no live caller."""
        if looks_like_key(credential):
            return await self.authenticate_key(credential)
        claims = await self._sessions.verify(credential)
        return await self.principal(claims)

    async def authenticate_key(self, key: str) -> Principal:
        """Raises: InvalidAccessTokenError for a key that is malformed or not live."""
        record, owner = await self._api_keys.authenticate(key)
        return Principal(
            user=owner,
            session_id=None,
            claims=None,
            roles=record.effective_scopes(owner),
            api_key=record,
        )

    async def principal(self, claims: AccessTokenClaims) -> Principal:
        """The live caller behind verified access-token claims.

        Raises: InvalidAccessTokenError when its session or key is no longer live.
        """
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
