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

        expiring = deployment.cli(
            "api-keys",
            "create",
            "alice",
            "--name",
            "nightly",
            "--expires-at",
            "2030-01-01T00:00:00Z",
        )
        assert expiring.returncode == 0, expiring.stderr
        for bad in ("soon", "2030-01-01T00:00:00"):  # not an instant; no offset
            refused = deployment.cli(
                "api-keys", "create", "alice", "--name", "x", "--expires-at", bad
            )
            assert_clean_failure(refused, 1)

        listed = deployment.cli("api-keys", "list", "--owner", "alice")
        assert listed.returncode == 0, listed.stderr
        line, nightly = listed.stdout.splitlines()
        assert "'nightly'" in nightly
        assert "expires=2030-01-01T00:00:00+00:00" in nightly
        assert line.startswith(key_id.group(1))
        assert f"ghk_{match.group(1)}" in line
        assert "scopes=user" in line
        assert "expires=never" in line
        assert match.group(2) not in listed.stdout

        revoked = deployment.cli("api-keys", "revoke", key_id.group(1))
        assert revoked.returncode == 0, revoked.stderr
        assert eventually_status(client, {"X-API-Key": key}, 401)

        unknown = deployment.cli("api-keys", "revoke", key_id.group(1))
        assert_clean_failure(unknown, 1)
        assert len(unknown.stderr.splitlines()) == 1


def test_no_key_reaches_the_access_log_in_any_transport(deployment: Deployment) -> None:
    """With every transport on (header, Bearer, ?api_key=, cookie), right and wrong keys alike:
    the server's log (access log included) never shows a key's secret."""
    env = {"GATEHOUSE_API_KEY_IN_QUERY": "true", "GATEHOUSE_API_KEY_IN_COOKIE": "true"}
    with deployment.serve(env=env) as server, server.client() as client:
        made = deployment.cli("users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
        key = deployment.cli("api-keys", "create", "alice", "--name", "ci").stdout.strip()
        wrong = key[:-4] + "zzzz"
        for candidate, expected in ((key, 200), (wrong, 401)):
            attempts = [
                client.get("/users/me", headers={"X-API-Key": candidate}),
                client.get("/users/me", headers={"Authorization": f"Bearer {candidate}"}),
                client.get("/users/me", params={"api_key": candidate, "page": "2"}),
                client.get("/users/me", headers={"Cookie": f"gatehouse_api_key={candidate}"}),
            ]
            for response in attempts:
                assert response.status_code == expected, response.request.url
                assert candidate not in response.text
        log = server.log()
        paths = [e["path"] for e in server.access_lines()]
    assert "/users/me?page=2" in paths
    for secret in (key.rsplit("_", 1)[1], wrong.rsplit("_", 1)[1]):
        assert secret not in log
