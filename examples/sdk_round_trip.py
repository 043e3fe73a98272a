"""Log in with the SDK and call two services with the token it keeps fresh.

Usage: GATEHOUSE_URL=http://127.0.0.1:8000 NOTES_URLS=http://127.0.0.1:8001,http://127.0.0.1:8002 \
       python sdk_round_trip.py alice   (password on stdin)
Prints one line per call: the service, the path and the status (a regular user gets 403
where only admins may go).
"""

import os
import sys

import httpx

from gatehouse.client import Client

gatehouse = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8000")
services = os.environ.get("NOTES_URLS", "http://127.0.0.1:8001").split(",")
username, password = sys.argv[1], sys.stdin.readline().rstrip("\n")

with Client(gatehouse) as auth_server:
    auth_server.login(username, password, device_name="sdk example")
    print(f"logged in as {auth_server.me().username}")
    # auth= attaches the access token, refreshes it before it expires, and retries once
    # after a 401 with a fresh one.
    with httpx.Client(auth=auth_server.auth, timeout=10) as http:
        for base in services:
            for path in ("/notes", "/admin/report"):
                answer = http.get(base + path)
                print(f"{base}{path} {answer.status_code}")
    auth_server.logout()
