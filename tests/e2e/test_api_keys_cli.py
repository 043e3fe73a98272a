"""`gatehouse api-keys` against a running server: the key is printed once and works at once."""

from __future__ import annotations

import re

from tests.e2e.harness import PASSWORD, Deployment, assert_clean_failure, eventually_status


def test_api_keys_cli_creates_lists_and_revokes_while_serving(deployment: Deployment) -> None:
    """`api-keys create alice --name ci --scope user` prints only the key on stdout (the record on
    stderr); the key authenticates; `list --owner alice` shows it without the secret; `revoke ID`
    stops it within the revocation poll interval; an unknown id exits 1 with one error line."""
    with deployment.serve() as server, server.client() as client:
        made = deployment.cli("users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr

        created = deployment.cli("api-keys", "create", "alice", "--name", "ci", "--scope", "user")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        match = re.fullmatch(r"ghk_([A-Za-z0-9]{16})_([A-Za-z0-9]{32})", key)
        assert match is not None, created.stdout
        key_id = re.search(r"created API key (\S+) ", created.stderr)
        assert key_id is not None, created.stderr
        me = client.get("/users/me", headers={"X-API-Key": key})
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "alice"

        listed = deployment.cli("api-keys", "list", "--owner", "alice")
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.splitlines()
        assert line.startswith(key_id.group(1))
        assert f"ghk_{match.group(1)}" in line
        assert "scopes=user" in line
        assert match.group(2) not in listed.stdout

        revoked = deployment.cli("api-keys", "revoke", key_id.group(1))
        assert revoked.returncode == 0, revoked.stderr
        assert eventually_status(client, {"X-API-Key": key}, 401)

        unknown = deployment.cli("api-keys", "revoke", key_id.group(1))
        assert_clean_failure(unknown, 1)
        assert len(unknown.stderr.splitlines()) == 1
