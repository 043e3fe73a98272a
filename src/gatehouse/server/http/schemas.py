"""Request and response bodies of the public API (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from gatehouse.server.accounts.models import User
from gatehouse.server.apikeys.models import ApiKey, ClientToken, IssuedApiKey
from gatehouse.server.sessions.models import CookieLogin, Session, TokenPair

# Schema-level caps only bound the work; the services apply the real rules.
Username = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
DeviceName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class RegisterRequest(BaseModel):
    username: Username
    password: Password
    email: EmailStr | None = None


class LoginRequest(BaseModel):
    username: Username
    password: Password
    device_name: DeviceName | None = None


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class ChangePasswordRequest(BaseModel):
    current_password: Password
    new_password: Password


class UpdateMeRequest(BaseModel):
    """Fields to change; send `email: null` to remove the address. Changing or removing
    the address needs `current_password`."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    current_password: Password | None = None


class AdminCreateUserRequest(BaseModel):
    """A user with a password, or (`service_account: true`, no password) a service account
    that cannot log in and only holds API keys."""

    username: Username
    password: Password | None = None
    email: EmailStr | None = None
    roles: Annotated[list[RoleName], Field(max_length=32)] = ["user"]
    service_account: bool = False


Scopes = Annotated[list[RoleName], Field(max_length=64)]


class CreateApiKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    scopes: Scopes | None = None
    # RFC 3339 with an offset; the service requires it to be in the future.
    expires_at: AwareDatetime | None = None


class AdminCreateApiKeyRequest(CreateApiKeyRequest):
    owner_id: UUID


class AdminUpdateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: Annotated[list[RoleName], Field(max_length=32)] | None = None
    is_active: bool | None = None
    email: EmailStr | None = None


class UserOut(BaseModel):
    id: UUID
    username: str
    email: str | None
    roles: list[str]
    is_active: bool
    service_account: bool
    created_at: datetime
    updated_at: datetime
    email_verified: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            email_verified=user.email_verified,
            roles=sorted(user.roles),
            is_active=user.is_active,
            service_account=user.is_service_account,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserPageOut(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class TokenPairOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    session_id: UUID

    @classmethod
    def of(cls, pair: TokenPair) -> TokenPairOut:
        return cls(
            access_token=pair.access_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
            session_id=pair.session_id,
        )


class CookieSessionOut(BaseModel):
    """A browser login: the session cookie is set; only the CSRF token is in the body."""

    csrf_token: str
    session_id: UUID
    user: UserOut
    expires_at: datetime

    @classmethod
    def of(cls, login: CookieLogin, user: User) -> CookieSessionOut:
        session = login.session
        return cls(
            csrf_token=login.csrf_token,
            session_id=session.id,
            user=UserOut.of(user),
            expires_at=min(session.expires_at, session.refresh_expires_at),
        )


class ClientTokenOut(BaseModel):
    """The client-credentials answer: no refresh token (RFC 6749 s4.4.3)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str

    @classmethod
    def of(cls, token: ClientToken) -> ClientTokenOut:
        return cls(
            access_token=token.access_token,
            token_type=token.token_type,
            expires_in=token.expires_in,
            scope=token.scope,
        )


class SessionOut(BaseModel):
    id: UUID
    device_name: str | None
    ip_address: str | None
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool

    @classmethod
    def of(cls, session: Session, *, current_id: UUID | None) -> SessionOut:
        return cls(
            id=session.id,
            device_name=session.device_name,
            ip_address=session.ip_address,
            user_agent=session.user_agent,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=min(session.expires_at, session.refresh_expires_at),
            current=session.id == current_id,
        )


class ApiKeyOut(BaseModel):
    """A key's record: never its secret."""

    id: UUID
    name: str
    prefix: str
    client_id: str
    owner_id: UUID
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            client_id=key.client_id,
            owner_id=key.owner_id,
            scopes=sorted(key.scopes),
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
        )


class IssuedApiKeyOut(ApiKeyOut):
    key: str

    @classmethod
    def of(cls, issued: IssuedApiKey) -> IssuedApiKeyOut:  # type: ignore[override]
        return cls(**ApiKeyOut.of(issued.record).model_dump(), key=issued.key)


class ApiKeyPageOut(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


# A reset or verification token as mailed. Any non-empty string is let through to answer
# 400 (invalid_reset_token / invalid_verification_token): only a missing or empty token is
# 422. The body size limit bounds its length.
AccountTokenText = Annotated[str, StringConstraints(min_length=1)]


class ForgotPasswordRequest(BaseModel):
    email: EmailStr


class ResetPasswordRequest(BaseModel):
    token: AccountTokenText
    new_password: Password


class VerifyEmailRequest(BaseModel):
    token: AccountTokenText


class AcceptedOut(BaseModel):
    """A request taken on, to be worked off in the background (a mail to send)."""

    status: str = "accepted"
    detail: str
