"""The client's one error tree for machine licensing: catch `LicenseError` to stop the program.

LicenseError                 the root; the message says why, never echoing a token or key
├── LicenseInvalid           the license file is malformed, unsigned, signed by an unknown
│                            key, of the wrong type, or has a missing or ill-typed claim
├── LicenseExpired           the license file's offline grace (`exp`) has passed
├── LicenseMismatch          the license file was issued to another machine's fingerprint
├── LicenseDenied            the server refused this machine (`status`, `code`, `detail`)
└── LicenseUnavailable       the server cannot be reached and no license file is cached

The module imports nothing, so offline verification and the hardware reader stay light.
"""

_DETAIL_LIMIT = 500


class LicenseError(Exception):
    """This machine holds no license that may be used now."""


class LicenseInvalid(LicenseError):
    """The license file must not be trusted: bad shape, signature, key, type or claims."""


class LicenseExpired(LicenseError):
    """The license file verified but its offline grace period is over."""


class LicenseMismatch(LicenseError):
    """The license file verified but names another machine's fingerprint."""


class LicenseDenied(LicenseError):
    """The server answered with a problem (RFC 9457) refusing this machine.

    Attributes:
        status: the HTTP status of the answer (401, 403, 422, ...).
        code: the problem's stable `code` (`unknown_device`, `device_revoked`, ...).
        detail: the problem's human-readable `detail` (cut to 500 characters).
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        detail = detail[:_DETAIL_LIMIT]
        message = f"the license server refused this machine ({status} {code})"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.status = status
        self.code = code
        self.detail = detail


class LicenseUnavailable(LicenseError):
    """The server could not be asked and no usable license file is cached."""
