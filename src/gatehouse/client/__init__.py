"""Client SDK for programs that run under a Gatehouse license (machine licensing).

    from gatehouse.client import LicenseError, check_license

`check_license` / `check_license_async` ask the server about this machine and fall back to
the cached, signed license file when it is away; `verify_license_file` checks such a file
offline; `collect` reads this machine's app-keyed hardware fingerprint. Every refusal is a
`LicenseError`. Never imports the server (import-linter holds that line).
"""

from gatehouse.client.errors import (
    LicenseDenied,
    LicenseError,
    LicenseExpired,
    LicenseInvalid,
    LicenseMismatch,
    LicenseUnavailable,
)
from gatehouse.client.hardware import Fingerprint, FingerprintError, collect
from gatehouse.client.license import check_license, check_license_async
from gatehouse.client.license_file import LICENSE_TYPE, LicenseClaims, verify_license_file

__all__ = [
    "check_license",
    "check_license_async",
    "verify_license_file",
    "LicenseClaims",
    "LICENSE_TYPE",
    "collect",
    "Fingerprint",
    "FingerprintError",
    "LicenseError",
    "LicenseInvalid",
    "LicenseExpired",
    "LicenseMismatch",
    "LicenseDenied",
    "LicenseUnavailable",
]
