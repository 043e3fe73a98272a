"""Verifier throughput on one core, warm key cache, against the raw Ed25519 rate.

Signs one Gatehouse-shaped access token the way the server does (PyJWS over compact JSON,
`kid` and `typ: at+jwt` headers, EdDSA with a fresh Ed25519 key), then measures in the same
process, pinned to one CPU, rounds interleaved, best round of each kept:

1. raw: `Ed25519PublicKey.verify(signature, signing_input)` of that token (the floor of
   any verifier: just the signature, no parsing);
2. `TokenVerifier.verify` with its verified-token cache OFF (`cache_size=0`): the full
   check each call (size, shape, header, allow-list, typ, key lookup in the warm JWKS
   cache, signature, iss/aud/required claims, times). This is the one compared with raw;
3. `AccessTokenVerifier` over `StaticKeys`, cache off (what the JWKS layer costs on top);
4. `TokenVerifier.verify` with the verified-token cache ON (the same token again: the
   signature is skipped; key presence and times are still checked). Not a fair comparison
   with raw, reported for what a service re-seeing one token gets.

The JWKS is served once by an in-memory `httpx.MockTransport` (the cache is warm before
timing starts; no request happens while timing, which the script asserts).

    .venv/bin/python bench/verifier_throughput.py [--seconds 1.0] [--rounds 5] [--cpu 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from gatehouse.verifier import AccessTokenVerifier, StaticKeys, TokenVerifier

ISSUER = "https://auth.example.com"
AUDIENCE = "gatehouse"
KID = "bench-key-1"


def gatehouse_token(key: Ed25519PrivateKey, now: int) -> str:
    """An access token shaped and signed as `AccessTokenIssuer.issue` does."""
    claims = {
        "iss": ISSUER,
        "sub": "0b0e5d1c-7f43-4c1e-9a55-2f7a4c3b9e10",
        "aud": AUDIENCE,
        "exp": now + 900,
        "iat": now,
        "nbf": now,
        "jti": "q4b8cJ3bT0mYk2hK1x9w_A",
        "kind": "user",
        "roles": ["user"],
        "sid": "7c1f3f0e-2b9d-4d7e-8f53-3c2b1a0d9e8f",
    }
    return jwt.api_jws.encode(
        json.dumps(claims, separators=(",", ":")).encode(),
        key,
        algorithm="EdDSA",
        headers={"kid": KID, "typ": "at+jwt"},
    )


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of `call` over about `seconds` (batches of 200)."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            call()
        done += 200
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    now = int(time.time())
    token = gatehouse_token(key, now)
    signing_input, _, _ = token.rpartition(".")
    signature = jwt.utils.base64url_decode(token.rsplit(".", 1)[1])
    jwk = json.loads(OKPAlgorithm.to_jwk(public))
    jwk.update({"kid": KID, "alg": "EdDSA", "use": "sig"})
    requests: list[str] = []

    def jwks(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(200, json={"keys": [jwk]})

    def verifier(cache_size: int) -> TokenVerifier:
        made = TokenVerifier(
            ISSUER,
            AUDIENCE,
            jwks_url="https://auth.example.com/.well-known/jwks.json",
            http_client=httpx.Client(transport=httpx.MockTransport(jwks)),
            cache_size=cache_size,
        )
        made.verify(token)  # warm the JWKS cache
        return made

    full, cached = verifier(0), verifier(1024)
    static = AccessTokenVerifier(
        keys=StaticKeys({KID: public}), issuer=ISSUER, audience=AUDIENCE, cache_size=0
    )
    fetches = len(requests)
    message = signing_input.encode()
    runs: dict[str, Callable[[], object]] = {
        "raw cryptography Ed25519 verify": lambda: public.verify(signature, message),
        "TokenVerifier.verify, cache off (full verify)": lambda: full.verify(token),
        "AccessTokenVerifier (StaticKeys), cache off": lambda: static.verify(token),
        "TokenVerifier.verify, verified-token cache on": lambda: cached.verify(token),
    }
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, call in runs.items():
            best[name] = max(best[name], rate(call, args.seconds))
    assert len(requests) == fetches, "the JWKS was fetched while timing"

    raw = best["raw cryptography Ed25519 verify"]
    print(
        f"token: {len(token)} bytes; one core (cpu {args.cpu}); "
        f"best of {args.rounds} x {args.seconds:.1f} s; PyJWT {jwt.__version__}\n"
    )
    print("| run | verify/s | us/call | of raw |")
    print("|---|---:|---:|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:,.0f} | {1e6 / value:.1f} | {value / raw:.0%} |")
    ratio = best["TokenVerifier.verify, cache off (full verify)"] / raw
    print(f"\nfull verification vs raw: {ratio:.0%} (target >= 70%)")


if __name__ == "__main__":
    main()
