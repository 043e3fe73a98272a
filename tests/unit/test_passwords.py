"""Password policy, normalisation and hashing parameters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from gatehouse.server.accounts.names import canonical_roles, canonical_username
from gatehouse.server.accounts.passwords import (
    HashProfile,
    PasswordHasher,
    check_new_password,
    normalise_password,
)
from gatehouse.server.errors import InvalidRoleError, InvalidUsernameError, WeakPasswordError

MakeHasher = Callable[..., PasswordHasher]


@pytest.fixture
def make_hasher() -> Iterator[MakeHasher]:
    """PasswordHasher instances whose thread pools are shut down after the test."""
    made: list[PasswordHasher] = []

    def make(profile: HashProfile, *, concurrency: int = 1) -> PasswordHasher:
        made.append(PasswordHasher(profile, concurrency=concurrency))
        return made[-1]

    yield make
    for hasher in made:
        hasher.close()


def test_opaque_string_maps_other_spaces_to_ascii_space() -> None:
    """RFC 8265: a no-break space in a password becomes a plain space."""
    assert normalise_password("a\u00a0b") == "a b"


def test_passwords_are_not_truncated() -> None:
    """256 characters are accepted whole; 257 are refused, never cut."""
    assert check_new_password("x" * 255 + "y") == "x" * 255 + "y"
    with pytest.raises(WeakPasswordError):
        check_new_password("x" * 257)


def test_username_forms() -> None:
    """Display keeps case; canonical folds case and width."""
    assert canonical_username("Alice") == ("Alice", "alice")
    assert canonical_username("\uff21lice")[1] == "alice"


@pytest.mark.parametrize("name", ["a b", "x\x07", "", "x" * 65])
def test_bad_usernames(name: str) -> None:
    """Spaces, control characters, empty and long names are refused."""
    with pytest.raises(InvalidUsernameError):
        canonical_username(name)


def test_role_names_are_checked() -> None:
    """Lowercase identifiers pass; anything else raises InvalidRoleError."""
    assert canonical_roles(["admin", "billing:read"]) == frozenset({"admin", "billing:read"})
    with pytest.raises(InvalidRoleError):
        canonical_roles(["Admin"])


@pytest.mark.slow_hash
async def test_the_default_profile_hashes_with_owasp_parameters(make_hasher: MakeHasher) -> None:
    """The production profile writes argon2id m=19456, t=2, p=1 and verifies it."""
    hasher = make_hasher("owasp")
    hashed = await hasher.hash("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify("correct horse battery", hashed) == (True, None)
    assert (await hasher.verify("wrong", hashed))[0] is False


@pytest.mark.slow_hash
async def test_a_hash_with_weaker_parameters_is_flagged_for_upgrade(
    make_hasher: MakeHasher,
) -> None:
    """A hash made with the test profile verifies under the production one and gets a new hash."""
    weak = await make_hasher("test").hash("correct horse battery")
    matches, upgraded = await make_hasher("owasp").verify("correct horse battery", weak)
    assert matches
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_a_corrupt_stored_hash_matches_nothing(make_hasher: MakeHasher) -> None:
    """An unrecognised hash string verifies as False instead of raising."""
    assert await make_hasher("test").verify("anything", "not-a-hash") == (False, None)


async def test_a_burst_of_hashes_runs_on_at_most_concurrency_threads(
    make_hasher: MakeHasher,
) -> None:
    """Twenty verifications at once all complete, on no more than `concurrency` threads."""

    def hash_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("gatehouse-hash")}

    before = hash_threads()  # other tests' pools, if any are still winding down
    hasher = make_hasher("test", concurrency=2)
    stored = await hasher.hash("correct horse battery")
    results = await asyncio.gather(
        *(hasher.verify("correct horse battery", stored) for _ in range(20))
    )
    assert results == [(True, None)] * 20
    assert 1 <= len(hash_threads() - before) <= 2
