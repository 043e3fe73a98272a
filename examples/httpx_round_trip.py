"""One token round trip with httpx: a token from the password grant, then GET /users/me.

Usage: GATEHOUSE_URL=http://127.0.0.1:8000 python httpx_round_trip.py alice  (password on stdin)
"""

import os
import sys

import httpx

base = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8000")
username, password = sys.argv[1], sys.stdin.readline().rstrip("\n")

with httpx.Client(base_url=base, timeout=10) as client:
    token = client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    token.raise_for_status()
    me = client.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    me.raise_for_status()
    print(me.text)
