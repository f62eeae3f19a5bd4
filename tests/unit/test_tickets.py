"""The stdlib ticket verifier accepts exactly what PyJWT accepts, plus the contract's own rules.

The oracle is PyJWT's verdict (signature, HS256 only, exp / iat / nbf against the clock with 30 s of
leeway, audience, issuer, required claims) and contract 3.1's rules for a ticket, each written once
in ``CONTRACT`` below: not a copy of the verifier's code. Times are taken when a test runs (a
strategy holds offsets from "now", resolved inside the test), so a slow suite cannot turn the
tokens stale. No example is dropped: tokens are signed with PyJWS, which signs any payload, and the
only examples filtered out (``assume``) are those within 2 s of a clock boundary, where PyJWT's own
clock and ours would read different seconds; the boundaries are tested exactly, with an injected
clock, in ``test_clock_boundaries``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from collab.auth import tickets
from collab.errors import Unauthorized

KEY = "ticket-key-0123456789abcdef0123456789abcdef"
OTHER_KEY = "another-key-0123456789abcdef0123456789"
ISSUER = "collab"
LEEWAY = 30
REQUIRED = ["exp", "iat", "sub", "wid", "jti", "aud", "iss"]


# -- the oracle --------------------------------------------------------------------------------
def _json_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _uuid(v: Any) -> bool:
    try:
        uuid.UUID(v)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


# Contract 3.1: what a ticket must be beyond what PyJWT checks. In order: a later rule may rely on an
# earlier one (the lifetime subtracts two numbers).
CONTRACT = (
    ("exp, iat and nbf are JSON numbers", lambda c: all(_json_number(c[k]) for k in ("exp", "iat", "nbf") if k in c)),
    ("sub is a string of 1 to 128 characters", lambda c: isinstance(c["sub"], str) and 1 <= len(c["sub"]) <= 128),
    ("wid is a workspace id (a UUID)", lambda c: isinstance(c["wid"], str) and _uuid(c["wid"])),
    ("jti is a string of 8 to 64 characters", lambda c: isinstance(c["jti"], str) and 8 <= len(c["jti"]) <= 64),
    ("a ticket lives at most 5 minutes", lambda c: c["exp"] - c["iat"] <= 300),
)  # fmt: skip


def oracle(token: str) -> bool:
    try:
        claims = jwt.decode(
            token,
            KEY,
            algorithms=["HS256"],
            audience="collab-ws",
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": REQUIRED},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return False
    return all(rule(claims) for _, rule in CONTRACT)


def ours(token: Any, now: float | None = None) -> bool:
    try:
        tickets.verify_ticket(token, KEY, ISSUER, now=now)
    except Unauthorized:
        return False
    return True


def sign(claims: Any, key: str = KEY, headers: dict[str, Any] | None = None) -> str:
    """Any JSON payload, signed HS256 (PyJWS signs what ``jwt.encode`` would refuse to)."""
    return jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), key, algorithm="HS256", headers=headers)


# -- strategies: valid tickets, then broken in up to three ways ---------------------------------
@dataclass(frozen=True)
class At:
    """A time claim, ``offset`` seconds from the moment the test runs."""

    offset: int | float


def resolve(claims: dict[str, Any], now: int) -> dict[str, Any]:
    def one(v: Any) -> Any:
        return now + v.offset if isinstance(v, At) else v

    return {k: one(v) for k, v in claims.items()}


@st.composite
def valid_claims(draw: Any) -> dict[str, Any]:
    iat = draw(st.integers(-250, 25))
    life = draw(st.integers(max(1, -25 - iat), 300))  # not expired: exp > now - 30, with room
    claims: dict[str, Any] = {
        "sub": draw(st.text(min_size=1, max_size=128)),
        "wid": str(draw(st.uuids())),
        "jti": draw(st.text(min_size=8, max_size=64)),
        "aud": draw(st.sampled_from(["collab-ws", ["other", "collab-ws"]])),
        "iss": ISSUER,
        "iat": At(iat),
        "exp": At(iat + life),
    }
    if draw(st.booleans()):
        claims["nbf"] = At(draw(st.integers(-300, 25)))
    return claims


times = st.one_of(st.integers(-1000, 1000), st.floats(-1000, 1000)).map(At)
other_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
wrong_values = {
    "sub": st.one_of(st.just(""), st.text(min_size=129, max_size=140)),
    "wid": st.one_of(st.text(max_size=12), st.uuids().map(lambda u: str(u)[:-1])),
    "jti": st.one_of(st.text(max_size=7), st.text(min_size=65, max_size=70)),
    "aud": st.sampled_from(["collab-api", ["collab-api"], "COLLAB-WS"]),
    "iss": st.sampled_from(["evil", "", "Collab"]),
    "exp": times,
    "iat": times,
    "nbf": times,
}


@st.composite
def broken_claims(draw: Any) -> dict[str, Any]:
    """A valid ticket's claims with 0-3 of: a claim dropped, retyped, or given a wrong value."""
    claims = draw(valid_claims())
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(wrong_values)))
        how = draw(st.sampled_from(["drop", "retype", "wrong"]))
        if how == "drop":
            claims.pop(name, None)
        elif how == "retype":
            # Not null for nbf, nor a list holding the audience among non-strings: the two places
            # where the verifier is laxer than PyJWT (docs/testing.md); no ticket we issue has either.
            value = draw(other_types)
            assume(not (name == "nbf" and value is None) and not (name == "aud" and isinstance(value, list)))
            claims[name] = value
        else:
            claims[name] = draw(wrong_values[name])
    return claims


def away_from_the_clock_edges(claims: dict[str, Any], now: int) -> bool:
    """Not within 2 s of a boundary (exp at now - 30, iat and nbf at now + 30): PyJWT reads its own
    clock (and whole seconds of the claims), so right at an edge the two verdicts may be taken on
    different seconds."""
    edges = {"exp": now - LEEWAY, "iat": now + LEEWAY, "nbf": now + LEEWAY}
    return all(not _json_number(claims.get(k)) or abs(claims[k] - edge) > 2 for k, edge in edges.items())


# -- properties ------------------------------------------------------------------------------
@given(
    c=broken_claims(),
    key=st.sampled_from([KEY, KEY, OTHER_KEY]),
    headers=st.sampled_from([None, {"typ": "JWT"}, {"kid": "k"}]),
)
@settings(max_examples=400, deadline=None)
def test_agrees_with_pyjwt_and_the_contract_on_generated_tickets(c, key, headers):
    now = int(time.time())
    claims = resolve(c, now)
    assume(away_from_the_clock_edges(claims, now))
    token = sign(claims, key, headers)
    verdict = oracle(token)
    event("accepted" if verdict else "refused")  # --hypothesis-show-statistics shows the mix
    assert ours(token) == verdict, claims


@given(c=valid_claims(), headers=st.sampled_from([None, {"typ": "JWT"}, {"kid": "k"}]))
@settings(max_examples=100, deadline=None)
def test_valid_tickets_are_accepted(c, headers):
    """The other half of agreement: what is generated valid is accepted by both, so the property
    above cannot pass by refusing everything (as it did when its times had gone stale)."""
    now = int(time.time())
    claims = resolve(c, now)
    token = sign(claims, KEY, headers)
    assert oracle(token), claims
    t = tickets.verify_ticket(token, KEY, ISSUER)
    assert (t.user_id, t.workspace_id, t.jti, t.expires_at) == (
        claims["sub"],
        claims["wid"],
        claims["jti"],
        claims["exp"],
    )


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_garbage_is_refused(text):
    assert ours(text) is False


def good_ticket(now: int, **over: Any) -> str:
    claims = {
        "sub": "u",
        "wid": str(uuid.uuid4()),
        "jti": "0123456789abcdef",
        "aud": "collab-ws",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(over)
    return sign({k: v for k, v in claims.items() if v is not None})


@given(pos=st.integers(0, 10_000), ch=st.sampled_from("AZaz09-_.="))
@settings(max_examples=150, deadline=None)
def test_any_single_character_change_is_refused_or_harmless(pos, ch):
    good = good_ticket(int(time.time()))
    i = pos % len(good)
    bad = good[:i] + ch + good[i + 1 :]
    assert ours(bad) == oracle(bad)


@given(st.binary(max_size=40))
@example(b"\xa2\x84\xd7")  # encodes to "ooTX": a part may end with any base64url character
def test_every_canonical_base64url_part_decodes(raw):
    assert tickets._b64(base64.urlsafe_b64encode(raw).rstrip(b"=").decode()) == raw


def test_a_signature_spelled_with_nonzero_unused_bits_is_refused():
    """43 base64url characters carry 258 bits for a 32-byte HMAC: the last character's two low bits
    are unused. A token whose last character differs only there decodes to the same signature bytes;
    PyJWT refuses it, and so do we: one token, one spelling."""
    good = good_ticket(int(time.time()))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(good[-1])
    twins = [good[:-1] + alphabet[(last & ~3) | low] for low in range(4) if (last & ~3) | low != last]
    assert ours(good) and len(twins) == 3
    for twin in twins:
        assert base64.urlsafe_b64decode(twin.rsplit(".", 1)[1] + "=") == base64.urlsafe_b64decode(
            good.rsplit(".", 1)[1] + "="
        ), "the same signature bytes"
        assert not ours(twin) and not oracle(twin)


# -- exact rules, with an injected clock -------------------------------------------------------
def test_clock_boundaries():
    """exp is good while ``exp > now - 30``; iat and nbf while ``<= now + 30`` (whole seconds and
    fractions alike). The verifier takes the clock it is given."""
    now = 2_000_000_000
    base = {"iat": now - 100, "exp": now + 100}
    cases = [
        ({"exp": now - 30}, False),
        ({"exp": now - 29}, True),
        ({"exp": now - 29.5}, True),
        ({"iat": now + 30, "exp": now + 60}, True),
        ({"iat": now + 30.5, "exp": now + 60}, False),
        ({"nbf": now + 30}, True),
        ({"nbf": now + 31}, False),
    ]
    for over, accepted in cases:
        token = good_ticket(now, **{**base, **over})
        assert ours(token, now=now) is accepted, over
    # and the clock is the one passed in, not the machine's
    assert ours(good_ticket(now), now=now) and not ours(good_ticket(now), now=now + 400)


def test_lifetime_is_at_most_five_minutes():
    now = int(time.time())
    assert ours(good_ticket(now, iat=now - 10, exp=now + 290))
    assert not ours(good_ticket(now, iat=now - 10, exp=now + 291))


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing ticket"),
        ("", "missing ticket"),
        ("not-a-ticket", "invalid ticket"),
        (12345, "invalid ticket"),  # not a string at all
        (b"a.b.c", "invalid ticket"),
    ],
)
def test_refusals_say_what_was_wrong(token, message):
    with pytest.raises(Unauthorized) as refused:
        tickets.verify_ticket(token, KEY, ISSUER)
    assert refused.value.message == message


def test_a_missing_claim_is_named_and_wrong_times_are_invalid():
    now = int(time.time())
    for name in REQUIRED:
        with pytest.raises(Unauthorized) as refused:
            tickets.verify_ticket(good_ticket(now, **{name: None}), KEY, ISSUER)
        assert refused.value.message == f"ticket lacks the {name} claim"
    for name in ("exp", "iat", "nbf"):
        for value in ("1", True, None, [now]):
            if name == "nbf" and value is None:
                continue  # a null nbf is read as absent (docs/testing.md)
            token = sign({**json.loads(_payload(good_ticket(now))), name: value})
            with pytest.raises(Unauthorized) as refused:
                tickets.verify_ticket(token, KEY, ISSUER)
            assert refused.value.message in ("invalid ticket", f"ticket lacks the {name} claim"), (
                name,
                value,
            )


def _payload(token: str) -> bytes:
    p = token.split(".")[1]
    return base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))


def test_a_header_that_is_not_an_object_is_refused():
    now = int(time.time())

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    for header in (b'["HS256"]', b'"HS256"', b'{"alg":"HS512"}', b'{"alg":"none"}'):
        signing_input = f"{b64(header)}.{b64(_payload(good_ticket(now)))}"
        mac = hmac.new(KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
        assert not ours(f"{signing_input}.{b64(mac)}"), header


def test_the_size_limit_is_4096_characters():
    now = int(time.time())
    unpadded = good_ticket(now, pad="")
    fill = tickets.MAX_TOKEN_CHARS - len(unpadded)
    # each 3 characters of claim text are 4 of base64url; find the padding that lands on the limit
    sizes = {len(good_ticket(now, pad="p" * n)): n for n in range(fill * 3 // 4 - 4, fill * 3 // 4 + 4)}
    at_limit = good_ticket(now, pad="p" * sizes[tickets.MAX_TOKEN_CHARS])
    assert len(at_limit) == tickets.MAX_TOKEN_CHARS and ours(at_limit)
    over = next(s for s in sorted(sizes) if s > tickets.MAX_TOKEN_CHARS)
    assert not ours(good_ticket(now, pad="p" * sizes[over]))


def test_time_refusals_say_which():
    now = 2_000_000_000
    cases = [
        ({"iat": now - 400, "exp": now - 100}, "ticket expired"),
        ({"iat": now + 100, "exp": now + 200}, "ticket is not yet valid"),
        ({"nbf": now + 100}, "ticket is not yet valid"),
        ({"iat": now, "exp": now + 301}, "ticket lifetime is too long"),
    ]
    for over, message in cases:
        with pytest.raises(Unauthorized) as refused:
            tickets.verify_ticket(good_ticket(now, **over), KEY, ISSUER, now=now)
        assert refused.value.message == message, over


def test_claim_lengths_at_their_limits():
    now = int(time.time())
    assert ours(good_ticket(now, sub="s" * 128)) and not ours(good_ticket(now, sub="s" * 129))
    assert ours(good_ticket(now, jti="j" * 64)) and not ours(good_ticket(now, jti="j" * 65))
    assert ours(good_ticket(now, jti="j" * 8)) and not ours(good_ticket(now, jti="j" * 7))
