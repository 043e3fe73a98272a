"""Tokens: signing keys (the key set, rotation, JWKS) and issuing access tokens."""
