"""Sessions: one per login per device, with rotating refresh tokens and revocation."""
