"""The stdlib ticket verifier accepts exactly what PyJWT accepts with the same rules."""

import base64
import time
import uuid

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.auth import tickets
from collab.errors import Unauthorized

KEY = "ticket-key-0123456789abcdef0123456789abcdef"
NOW = int(time.time())


def pyjwt_verdict(token):
    try:
        c = jwt.decode(
            token,
            KEY,
            algorithms=["HS256"],
            audience="collab-ws",
            issuer="collab",
            leeway=30,
            options={"require": ["exp", "iat", "sub", "wid", "jti", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return False
    except (ValueError, TypeError):
        return False
    try:
        if c["iat"] > time.time() + 30 or c["exp"] - c["iat"] > 300:
            return False
        uuid.UUID(c["wid"])
        ok_types = isinstance(c["sub"], str) and 1 <= len(c["sub"]) <= 128 and isinstance(c["jti"], str)
        return ok_types and 8 <= len(c["jti"]) <= 64
    except (TypeError, ValueError, AttributeError):
        return False


def ours(token):
    try:
        tickets.verify_ticket(token, KEY, "collab")
        return True
    except Unauthorized:
        return False


numbers = st.one_of(
    st.integers(NOW - 1000, NOW + 1000),
    st.floats(NOW - 1000, NOW + 1000),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.just("user-1"), st.text(max_size=3), st.integers()),
        "wid": st.one_of(st.just(str(uuid.uuid4())), st.text(max_size=5)),
        "jti": st.one_of(st.just("0123456789abcdef"), st.text(max_size=4)),
        "aud": st.one_of(st.just("collab-ws"), st.just(["x", "collab-ws"]), st.just("collab-api")),
        "iss": st.one_of(st.just("collab"), st.just("evil")),
        "exp": numbers,
        "iat": numbers,
        "nbf": numbers,
    },
)


@given(
    c=claims,
    key=st.sampled_from([KEY, "another-key-0123456789abcdef0123456789"]),
    headers=st.sampled_from([None, {"typ": "JWT"}, {"kid": "k"}]),
)
@settings(max_examples=200, deadline=None)
def test_agrees_with_pyjwt_on_generated_tickets(c, key, headers):
    c = {k: v for k, v in c.items() if v is not None}
    try:
        token = jwt.encode(c, key, algorithm="HS256", headers=headers)
    except (TypeError, ValueError):
        return
    assert ours(token) == pyjwt_verdict(token)


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_garbage_is_refused(text):
    assert ours(text) is False


@given(pos=st.integers(0, 10_000), ch=st.sampled_from("AZaz09-_.="))
@settings(max_examples=150, deadline=None)
def test_any_single_character_change_is_refused_or_harmless(pos, ch):
    good = jwt.encode(
        {
            "sub": "u",
            "wid": str(uuid.uuid4()),
            "jti": "0123456789abcdef",
            "aud": "collab-ws",
            "iss": "collab",
            "iat": NOW,
            "exp": NOW + 300,
        },
        KEY,
        algorithm="HS256",
    )
    i = pos % len(good)
    bad = good[:i] + ch + good[i + 1 :]
    assert ours(bad) == pyjwt_verdict(bad)


def test_a_signature_spelled_with_nonzero_unused_bits_is_refused():
    """43 base64url characters carry 258 bits for a 32-byte HMAC: the last character's two low bits
    are unused. A token whose last character differs only there decodes to the same signature bytes;
    PyJWT refuses it, and so do we: one token, one spelling."""
    now = int(time.time())  # not NOW (import time): a long test run would have expired the ticket
    good = jwt.encode(
        {"sub": "u", "wid": str(uuid.uuid4()), "jti": "0123456789abcdef", "aud": "collab-ws", "iss": "collab",
         "iat": now, "exp": now + 300},
        KEY,
        algorithm="HS256",
    )  # fmt: skip
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(good[-1])
    twins = [good[:-1] + alphabet[(last & ~3) | low] for low in range(4) if (last & ~3) | low != last]
    assert ours(good) and len(twins) == 3
    for twin in twins:
        assert base64.urlsafe_b64decode(twin.rsplit(".", 1)[1] + "=") == base64.urlsafe_b64decode(
            good.rsplit(".", 1)[1] + "="
        ), "the same signature bytes"
        assert not ours(twin) and not pyjwt_verdict(twin)
