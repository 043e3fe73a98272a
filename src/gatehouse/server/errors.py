"""The server's one error tree. It imports nothing of ours and knows nothing of HTTP.

Every error carries a stable snake_case `code` that clients may branch on, and a message
that is safe to show: it never contains a submitted value or a secret.

    GatehouseError
    ├── InvalidInputError            invalid_input
    │   ├── InvalidUsernameError     invalid_username
    │   ├── WeakPasswordError        weak_password
    │   ├── InvalidRoleError         invalid_role
    │   ├── InvalidScopeError        invalid_scope (RFC 6749 s5.2)
    │   └── UnsupportedGrantTypeError  unsupported_grant_type (RFC 6749 s5.2)
    ├── AuthenticationError          (401)
    │   ├── InvalidCredentialsError  invalid_credentials
    │   ├── InvalidClientError       invalid_client (RFC 6749 s5.2)
    │   ├── NotAuthenticatedError    not_authenticated
    │   ├── InvalidAccessTokenError  invalid_token
    │   └── UnknownDeviceError       unknown_device (an unknown fingerprint or license key)
    ├── InvalidGrantError            invalid_grant (a refresh token or grant that fails)
    ├── PermissionDeniedError        insufficient_scope
    │   ├── SessionRequiredError     session_required
    │   ├── CsrfError                csrf_failed
    │   ├── DeviceSuspendedError     device_suspended
    │   ├── DeviceRevokedError       device_revoked
    │   ├── LicenseExpiredError      license_expired
    │   ├── LicenseSuspendedError    license_suspended
    │   ├── LicenseFullError         license_full
    │   └── FingerprintMismatchError fingerprint_mismatch
    ├── NotFoundError                not_found
    ├── ConflictError                conflict
    │   ├── UsernameTakenError       username_taken
    │   ├── DeviceExistsError        device_exists
    │   └── SelfLockoutError         self_lockout
    └── StorageUnavailableError      storage_unavailable
"""


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


class StorageUnavailableError(GatehouseError):
    code = "storage_unavailable"
    default_message = "The database is unavailable; try again later."
