"""A licensed desktop program's start: check this machine's license, online or offline.

Usage: GATEHOUSE_URL=https://auth.example.com ACME_LICENSE_KEY=ghl_... python licensed_app.py
The first run activates this machine with the key; later runs verify it, and when the
server cannot be reached, the signed license file cached in ACME_CACHE_DIR keeps the program
running until its offline grace ends.
"""

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gatehouse.client import LicenseError, check_license

server = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8000")
cache = Path(os.environ.get("ACME_CACHE_DIR", Path.home() / ".cache" / "acme-desktop"))

try:
    claims = check_license(
        server,
        app_id="com.example.acme-desktop",
        license_key=os.environ.get("ACME_LICENSE_KEY"),
        cache_dir=cache,
    )
except LicenseError as refused:
    print(f"not licensed on this machine: {refused}", file=sys.stderr)
    sys.exit(1)

until = datetime.fromtimestamp(claims.expires_at, UTC).isoformat(timespec="seconds")
print(f"licensed: {claims.product} {sorted(claims.features)} until {until}")
