"""End to end on one host: the real `gatehouse` script, SQLite in a fresh data dir, real TCP."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt

from tests.e2e.harness import (
    PASSWORD,
    Deployment,
    assert_clean_failure,
    bearer,
    eventually_status,
    file_mode,
    login,
    register,
)

SECRET_A = "secret-a-" + "a" * 40
SECRET_B = "secret-b-" + "b" * 40


def test_serve_initialises_a_fresh_data_dir_and_serves_over_http(deployment: Deployment) -> None:
    """`gatehouse serve` on a missing data dir creates it (0700) with a 0600 SQLite database and
    secret.key, migrates, and serves health, accounts and a JWKS without private members."""
    assert not deployment.data_dir.exists()

    with deployment.serve() as server:
        assert file_mode(deployment.data_dir) == 0o700
        assert file_mode(deployment.data_dir / "gatehouse.db") == 0o600
        assert file_mode(deployment.data_dir / "secret.key") == 0o600
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            register(client, "alice")
            token = login(client, "alice")
            me = client.get("/users/me", headers=bearer(token))
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"
            jwks = client.get("/.well-known/jwks.json")
            assert jwks.status_code == 200
            keys = jwks.json()["keys"]
            assert len(keys) == 1
            assert "d" not in keys[0]


def test_first_admin_comes_from_the_cli_while_the_server_runs(deployment: Deployment) -> None:
    """There is no default admin; `gatehouse users create boss --admin --password-stdin` makes one
    that may list users, while others get 403 and anonymous callers 401."""
    with deployment.serve() as server, server.client() as client:
        assert client.get("/admin/users").status_code == 401
        refused = client.post("/auth/login", json={"username": "admin", "password": "admin"})
        assert refused.status_code == 401

        register(client, "alice")
        created = deployment.cli(
            "users", "create", "boss", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        assert created.stdout.startswith("created boss ")
        assert "roles=admin,user" in created.stdout

        listed = client.get("/admin/users", headers=bearer(login(client, "boss")))
        assert listed.status_code == 200, listed.text
        assert {u["username"] for u in listed.json()["items"]} == {"alice", "boss"}
        forbidden = client.get("/admin/users", headers=bearer(login(client, "alice")))
        assert forbidden.status_code == 403
        assert client.get("/admin/users").status_code == 401


def test_users_cli_lists_sets_roles_and_deactivates(deployment: Deployment) -> None:
    """`gatehouse users list`, `set-roles` and `deactivate` print one line per result and change
    what the running server allows; the server refuses a deactivated user's access token
    within its revocation poll interval (bounded here at 3 s)."""
    with deployment.serve() as server, server.client() as client:
        register(client, "alice")
        register(client, "bob")
        bob_token = login(client, "bob")
        assert client.get("/users/me", headers=bearer(bob_token)).status_code == 200

        listed = deployment.cli("users", "list")
        assert listed.returncode == 0, listed.stderr
        rows = {tuple(line.split()[1:]) for line in listed.stdout.splitlines()}
        assert rows == {("alice", "active", "user"), ("bob", "active", "user")}

        promoted = deployment.cli("users", "set-roles", "alice", "admin", "user")
        assert promoted.returncode == 0, promoted.stderr
        assert promoted.stdout == "alice: roles=admin,user\n"
        admin_view = client.get("/admin/users", headers=bearer(login(client, "alice")))
        assert admin_view.status_code == 200, admin_view.text

        deactivated = deployment.cli("users", "deactivate", "bob")
        assert deactivated.returncode == 0, deactivated.stderr
        assert deactivated.stdout == "bob: deactivated, sessions ended\n"
        assert eventually_status(client, bearer(bob_token), 401)

        listed = deployment.cli("users", "list")
        rows = {tuple(line.split()[1:]) for line in listed.stdout.splitlines()}
        assert rows == {("alice", "active", "admin,user"), ("bob", "inactive", "user")}


def test_users_cli_unknown_username_fails_with_one_error_line(deployment: Deployment) -> None:
    """`gatehouse users set-roles` and `deactivate` with an unknown username exit 1 with a single
    `error:` line naming the problem and no traceback."""
    upgraded = deployment.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    results = deployment.cli_concurrently(
        ["users", "set-roles", "nobody", "admin"], ["users", "deactivate", "nobody"]
    )

    for result in results:
        assert_clean_failure(result, 1)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert "no such user" in lines[0].lower()
        assert result.stdout == ""


def test_keys_rotate_while_serving(deployment: Deployment) -> None:
    """After `gatehouse keys rotate` on a running server, `keys list` shows the new signing key and
    the old one verifying until a time, old tokens still work, and a new login is signed with the
    new key."""
    with (
        deployment.serve(env={"GATEHOUSE_KEY_REFRESH_INTERVAL": "1"}) as server,
        server.client() as client,
    ):
        register(client, "alice")
        old_token = login(client, "alice")
        old_kid = jwt.get_unverified_header(old_token)["kid"]

        rotated = deployment.cli("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.startswith("new signing key ")
        new_kid = rotated.stdout.split()[-1]
        assert new_kid != old_kid

        listed = deployment.cli("keys", "list")
        assert listed.returncode == 0, listed.stderr
        states = {
            line.split()[0]: " ".join(line.split()[3:]) for line in listed.stdout.splitlines()
        }
        assert set(states) == {old_kid, new_kid}
        assert states[new_kid] == "signing"
        assert states[old_kid].startswith("verifying until ")

        assert client.get("/users/me", headers=bearer(old_token)).status_code == 200

        time.sleep(1.2)  # past GATEHOUSE_KEY_REFRESH_INTERVAL: the server reloads its keys
        new_token = login(client, "alice")
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert client.get("/users/me", headers=bearer(new_token)).status_code == 200


def test_no_token_outlives_the_key_that_signed_it_after_rotation(
    deployment: Deployment,
) -> None:
    """After `gatehouse keys rotate` on a running server, every access token it issues expires no
    later than the key that signed it retires (per `keys list`), so none is refused while still
    valid."""
    # TOKEN_LEEWAY=0 makes "expired" exactly `exp`; the key refresh interval stays at 60 s.
    deployment.env["GATEHOUSE_TOKEN_LEEWAY"] = "0"
    with deployment.serve() as server, server.client() as client:
        register(client, "alice")
        rotated = deployment.cli("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        time.sleep(1.1)  # a login a little after the rotation

        token = login(client, "alice")
        kid = jwt.get_unverified_header(token)["kid"]
        expires = datetime.fromtimestamp(
            jwt.decode(token, options={"verify_signature": False})["exp"], UTC
        )

        listed = deployment.cli("keys", "list")
        assert listed.returncode == 0, listed.stderr
        states = {
            line.split()[0]: " ".join(line.split()[3:]) for line in listed.stdout.splitlines()
        }
        state = states[kid]
        if state.startswith("verifying until "):
            retires = datetime.fromisoformat(state.removeprefix("verifying until "))
            assert expires <= retires, (
                f"token signed by {kid} expires at {expires.isoformat()} but the key "
                f"retires at {retires.isoformat()}"
            )
        else:
            assert state == "signing"


def test_access_token_ttl_out_of_range_is_a_configuration_error(
    deployment: Deployment,
) -> None:
    """`GATEHOUSE_ACCESS_TOKEN_TTL=5 gatehouse db upgrade` exits 2 naming the variable, without a
    traceback."""
    result = deployment.cli("db", "upgrade", env={"GATEHOUSE_ACCESS_TOKEN_TTL": "5"})

    assert_clean_failure(result, 2)
    assert "GATEHOUSE_ACCESS_TOKEN_TTL" in result.stderr


def test_short_secret_key_is_a_configuration_error_that_hides_the_value(
    deployment: Deployment,
) -> None:
    """`GATEHOUSE_SECRET_KEY=short` makes a command exit 2 naming GATEHOUSE_SECRET_KEY without
    printing the value."""
    result = deployment.cli("db", "upgrade", env={"GATEHOUSE_SECRET_KEY": "short"})

    assert_clean_failure(result, 2)
    assert "GATEHOUSE_SECRET_KEY" in result.stderr
    assert "short" not in result.stdout + result.stderr


def test_a_different_secret_on_an_existing_database_is_refused(deployment: Deployment) -> None:
    """After serving with one GATEHOUSE_SECRET_KEY, `gatehouse keys list` with another exits 2 with
    an error that mentions GATEHOUSE_SECRET_KEY and prints neither secret."""
    with deployment.serve(env={"GATEHOUSE_SECRET_KEY": SECRET_A}):
        pass

    result = deployment.cli("keys", "list", env={"GATEHOUSE_SECRET_KEY": SECRET_B})

    assert_clean_failure(result, 2)
    assert "GATEHOUSE_SECRET_KEY" in result.stderr
    output = result.stdout + result.stderr
    assert SECRET_A not in output
    assert SECRET_B not in output
