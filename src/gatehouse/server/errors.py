"""The server's one error tree. It imports nothing of ours and knows nothing of HTTP.

Every error carries a stable snake_case `code` that clients may branch on, and a message
that is safe to show: it never contains a submitted value or a secret.

    GatehouseError
    ├── InvalidInputError            invalid_input
    │   ├── InvalidUsernameError     invalid_username
    │   ├── WeakPasswordError        weak_password
    │   ├── InvalidRoleError         invalid_role
    │   ├── InvalidEmailError        invalid_email
    │   ├── InvalidScopeError        invalid_scope (RFC 6749 s5.2)
    │   └── UnsupportedGrantTypeError  unsupported_grant_type (RFC 6749 s5.2)
    ├── AuthenticationError          (401)
    │   ├── InvalidCredentialsError  invalid_credentials
    │   ├── InvalidClientError       invalid_client (RFC 6749 s5.2)
    │   ├── NotAuthenticatedError    not_authenticated
    │   ├── InvalidAccessTokenError  invalid_token
    │   └── UnknownDeviceError       unknown_device (an unknown fingerprint or license key)
    ├── InvalidGrantError            invalid_grant (a refresh token or grant that fails)
    ├── InvalidResetTokenError       invalid_reset_token (400)
    ├── InvalidVerificationTokenError  invalid_verification_token (400)
    ├── PermissionDeniedError        insufficient_scope
    │   ├── SessionRequiredError     session_required
    │   ├── CsrfError                csrf_failed
    │   ├── DeviceSuspendedError     device_suspended
    │   ├── DeviceRevokedError       device_revoked
    │   ├── LicenseExpiredError      license_expired
    │   ├── LicenseSuspendedError    license_suspended
    │   ├── LicenseFullError         license_full
    │   ├── FingerprintMismatchError fingerprint_mismatch
    │   └── EmailUnverifiedError     email_unverified
    ├── NotFoundError                not_found
    ├── ConflictError                conflict
    │   ├── UsernameTakenError       username_taken
    │   ├── EmailTakenError          email_taken
    │   ├── EmailMissingError        email_missing (no address to verify)
    │   ├── EmailAlreadyVerifiedError  email_already_verified
    │   ├── DeviceExistsError        device_exists
    │   └── SelfLockoutError         self_lockout
    ├── RateLimitedError             rate_limited (429, Retry-After)
    │   └── AccountLockedError       account_locked
    └── UnavailableError             (503, Retry-After)
        ├── StorageUnavailableError  storage_unavailable
        ├── LimitsUnavailableError   limits_unavailable (the shared limit store is down)
        └── OverloadedError          overloaded (the password-hash queue is full)
"""

from __future__ import annotations

import math


class GatehouseError(Exception):
    """Root of every error a caller of the server can cause or meet."""

    code = "error"
    default_message = "The request failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInputError(GatehouseError):
    code = "invalid_input"
    default_message = "The input is invalid."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidUsernameError(InvalidInputError):
    code = "invalid_username"
    default_message = "The username is not allowed."


class WeakPasswordError(InvalidInputError):
    code = "weak_password"
    default_message = "The password is not allowed."


class InvalidRoleError(InvalidInputError):
    code = "invalid_role"
    default_message = "A role name is not allowed."


class InvalidEmailError(InvalidInputError):
    code = "invalid_email"
    default_message = "The email address is not valid."


class InvalidScopeError(InvalidInputError):
    code = "invalid_scope"
    default_message = "A requested scope is not allowed."


class UnsupportedGrantTypeError(InvalidInputError):
    code = "unsupported_grant_type"
    default_message = "The grant type is not supported."


class AuthenticationError(GatehouseError):
    code = "authentication_failed"
    default_message = "Authentication failed."


class InvalidCredentialsError(AuthenticationError):
    """Unknown user, wrong password and inactive user: deliberately one error."""

    code = "invalid_credentials"
    default_message = "The username or password is incorrect."


class InvalidClientError(AuthenticationError):
    """Unknown client id, wrong secret, revoked or expired key, inactive owner: one error."""

    code = "invalid_client"
    default_message = "Client authentication failed."


class NotAuthenticatedError(AuthenticationError):
    code = "not_authenticated"
    default_message = "This request needs a bearer access token."


class InvalidAccessTokenError(AuthenticationError):
    code = "invalid_token"
    default_message = "The access token is invalid, expired or revoked."


class UnknownDeviceError(AuthenticationError):
    """No device has this fingerprint, or no license this key: deliberately one error, so
    an anonymous caller learns nothing about which devices or licenses exist."""

    code = "unknown_device"
    default_message = "No registered device or license matches."


class InvalidGrantError(GatehouseError):
    code = "invalid_grant"
    default_message = "The grant is invalid, expired or revoked."


class PermissionDeniedError(GatehouseError):
    code = "insufficient_scope"
    default_message = "The caller lacks the role this request needs."


class SessionRequiredError(PermissionDeniedError):
    """A route that acts on the caller's own login (log out, change the password, manage
    keys) was called with an API key or a client-credentials token."""

    code = "session_required"
    default_message = "This request needs a signed-in session, not an API key."


class CsrfError(PermissionDeniedError):
    """An unsafe request riding a browser session cookie without proof that our own page
    sent it: no or a wrong X-CSRF-Token, or a foreign Origin / Sec-Fetch-Site."""

    code = "csrf_failed"
    default_message = "The request failed the cross-site request forgery check."


class DeviceSuspendedError(PermissionDeniedError):
    code = "device_suspended"
    default_message = "This device is suspended."


class DeviceRevokedError(PermissionDeniedError):
    code = "device_revoked"
    default_message = "This device is revoked."


class LicenseExpiredError(PermissionDeniedError):
    code = "license_expired"
    default_message = "The license of this device has expired."


class LicenseSuspendedError(PermissionDeniedError):
    code = "license_suspended"
    default_message = "The license of this device is suspended."


class LicenseFullError(PermissionDeniedError):
    code = "license_full"
    default_message = "Every seat of this license is taken; deactivate a device first."


class FingerprintMismatchError(PermissionDeniedError):
    """A device token presented with a fingerprint that is not its device's."""

    code = "fingerprint_mismatch"
    default_message = "The fingerprint is not this device's."


class NotFoundError(GatehouseError):
    code = "not_found"
    default_message = "No such resource."


class ConflictError(GatehouseError):
    code = "conflict"
    default_message = "The request conflicts with the current state."


class UsernameTakenError(ConflictError):
    code = "username_taken"
    default_message = "That username is taken."


class DeviceExistsError(ConflictError):
    code = "device_exists"
    default_message = "A device with this fingerprint is registered already."


class SelfLockoutError(ConflictError):
    code = "self_lockout"
    default_message = "An admin cannot deactivate, delete or demote their own account."


class EmailTakenError(ConflictError):
    code = "email_taken"
    default_message = "That email address belongs to another account."


class EmailMissingError(ConflictError):
    code = "email_missing"
    default_message = "The account has no email address to verify."


class EmailAlreadyVerifiedError(ConflictError):
    code = "email_already_verified"
    default_message = "The account's email address is verified already."


class EmailUnverifiedError(PermissionDeniedError):
    code = "email_unverified"
    default_message = "Verify the account's email address before logging in."


class InvalidResetTokenError(GatehouseError):
    """Reused, expired, superseded, altered, malformed or of another kind: one error."""

    code = "invalid_reset_token"
    default_message = "The password reset link is invalid or has expired."


class InvalidVerificationTokenError(GatehouseError):
    code = "invalid_verification_token"
    default_message = "The verification link is invalid or has expired."


class RateLimitedError(GatehouseError):
    """Too many attempts; `retry_after` is whole seconds, at least 1. `limit` names the
    limit that refused (for metrics), never a value the caller sent."""

    code = "rate_limited"
    default_message = "Too many attempts; try again later."

    def __init__(
        self, message: str | None = None, *, retry_after: float, limit: str = "ip"
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))
        self.limit = limit


class AccountLockedError(RateLimitedError):
    """The same answer for a name that exists and one that does not, right password or not."""

    code = "account_locked"
    default_message = "Too many failed logins for this account; try again later."

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after, limit="account")


class UnavailableError(GatehouseError):
    """The server cannot take the request now; `retry_after` in whole seconds."""

    code = "unavailable"
    default_message = "The service is unavailable; try again later."
    retry_after = 5


class StorageUnavailableError(UnavailableError):
    code = "storage_unavailable"
    default_message = "The database is unavailable; try again later."


class LimitsUnavailableError(UnavailableError):
    """Credential routes fail closed when the shared limit store (Redis) cannot be reached."""

    code = "limits_unavailable"
    default_message = "Sign-in is briefly unavailable; try again later."


class OverloadedError(UnavailableError):
    code = "overloaded"
    default_message = "The server is busy checking passwords; try again shortly."
    retry_after = 1
