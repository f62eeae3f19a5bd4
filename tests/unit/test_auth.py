"""Every way a token or ticket can be wrong is refused, and no message repeats the token."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from collab.auth import tokens
from collab.config import load_settings
from collab.errors import Unauthorized

SECRET = "unit-secret-0123456789abcdef0123456789abcdef"
BASE = {"DATABASE_URL": "postgresql://h/d", "REDIS_URL": "redis://h", "JWT_SECRET": SECRET}
HS = load_settings(BASE)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
WID = "0b6f5f5e-3f7e-4c59-9a0e-3d6f3f0a1c11"


def claims(**over):
    now = int(time.time())
    c = {
        "sub": "user-1",
        "iss": "collab",
        "aud": "collab-api",
        "iat": now,
        "exp": now + 300,
        "email": "a@example.com",
        "name": "Ada",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def hs(c, key=SECRET):
    return jwt.encode(c, key, algorithm="HS256")


def refused(token, settings=HS, fn=tokens.verify_access_token):
    with pytest.raises(Unauthorized) as exc:
        fn(token, settings)
    assert exc.value.status == 401
    if token:
        assert token not in exc.value.message
        for part in token.split("."):
            assert len(part) < 8 or part not in exc.value.message
    return exc.value.message


def test_valid_hs256_token():
    ident = tokens.verify_access_token(hs(claims()), HS)
    assert ident == tokens.Identity("user-1", "a@example.com", "Ada")


@pytest.mark.parametrize(
    "bad",
    [
        lambda now: {"exp": now - 120},  # expired beyond the 30 s leeway
        lambda now: {"iat": now + 600, "exp": now + 900},  # not yet valid
        lambda now: {"nbf": now + 600},
        lambda now: {"aud": "someone-else"},
        lambda now: {"iss": "evil"},
        lambda now: {"sub": None},
        lambda now: {"exp": None},
        lambda now: {"iat": None},
        lambda now: {"sub": ""},
    ],
)
def test_bad_claims_are_refused(bad):
    """Times are taken when the test runs, not when it is collected (a long suite lies between)."""
    bad = bad(int(time.time()))
    refused(hs(claims(**bad)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda now: {"exp": now - 120}, "token expired"),
        (lambda now: {"iat": now + 600, "exp": now + 900}, "token is not yet valid"),
        (lambda now: {"nbf": now + 600}, "token is not yet valid"),
        (lambda now: {"aud": "someone-else"}, "token audience is wrong"),
        (lambda now: {"iss": "evil"}, "token issuer is wrong"),
        (lambda now: {"sub": None}, "token lacks the sub claim"),
        (lambda now: {"exp": None}, "token lacks the exp claim"),
        (lambda now: {"iat": None}, "token lacks the iat claim"),
        (lambda now: {"sub": ""}, "token sub is invalid"),
        (lambda now: {"sub": "u" * 129}, "token sub is invalid"),
        (lambda now: {"sub": 42}, "invalid token"),  # PyJWT: sub must be a string
        (lambda now: {"iat": True}, "token iat is invalid"),  # a bool passes PyJWT's int() check
    ],
)
def test_each_refusal_says_what_was_wrong(bad, message):
    """The client acts on the reason (an expired token is refreshed, others are final): each is
    named, and never with the token's text."""
    assert refused(hs(claims(**bad(int(time.time()))))) == message


def test_a_missing_or_unreadable_token_is_named_so():
    assert refused(None) == refused("") == "missing bearer token"
    assert refused("a.b.c") == "invalid token"


def test_sub_of_128_characters_is_the_longest_taken():
    assert tokens.verify_access_token(hs(claims(sub="u" * 128)), HS).user_id == "u" * 128
    assert tokens.verify_access_token(hs(claims(sub="u")), HS).user_id == "u"  # and one the shortest


@pytest.mark.parametrize(
    ("claim", "verified"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("FALSE", False),
        ("maybe", None),
        (1, None),
        (None, None),
    ],
)
def test_email_verified_is_a_bool_or_cognitos_string_else_unknown(claim, verified):
    assert tokens.verify_access_token(hs(claims(email_verified=claim)), HS).email_verified is verified


def test_a_cognito_username_names_the_user_and_claims_of_other_types_are_dropped():
    ident = tokens.verify_access_token(hs(claims(name=None, **{"cognito:username": "ada.l"})), HS)
    assert ident.name == "ada.l"
    ident = tokens.verify_access_token(hs(claims(name=7, email=["a@example.com"])), HS)
    assert (ident.name, ident.email) == (None, None)


def test_issued_access_tokens_carry_exactly_what_was_given():
    before = int(time.time())
    tok = tokens.issue_access_token(HS, "user-9", email="n@example.com", name="Nia", ttl_s=600)
    c = jwt.decode(tok, SECRET, algorithms=["HS256"], audience="collab-api", issuer="collab")
    assert set(c) == {"sub", "iss", "aud", "iat", "exp", "email", "name"}
    assert (c["sub"], c["email"], c["name"], c["exp"] - c["iat"]) == ("user-9", "n@example.com", "Nia", 600)
    assert before <= c["iat"] <= int(time.time())
    bare = jwt.decode(
        tokens.issue_access_token(HS, "user-9"), SECRET, algorithms=["HS256"], audience="collab-api"
    )
    assert set(bare) == {"sub", "iss", "aud", "iat", "exp"} and bare["exp"] - bare["iat"] == 12 * 3600
    assert tokens.verify_access_token(tok, HS) == tokens.Identity("user-9", "n@example.com", "Nia")


def test_leeway_is_at_most_30_seconds():
    tokens.verify_access_token(hs(claims(exp=int(time.time()) - 20)), HS)
    refused(hs(claims(exp=int(time.time()) - 45)))


def test_a_token_issued_up_to_30_seconds_ahead_of_our_clock_is_taken():
    now = 1_800_000_000.0
    tokens._check_iat({"iat": now + tokens.LEEWAY_S}, now)  # the other clock runs 30 s ahead: fine
    with pytest.raises(Unauthorized) as early:
        tokens._check_iat({"iat": now + tokens.LEEWAY_S + 1}, now)
    assert early.value.message == "token is not yet valid"
    assert tokens.LEEWAY_S == 30


def test_bad_signature_garbage_and_missing():
    refused(hs(claims(), key="another-secret-0123456789abcdef0123456"))
    for garbage in ["garbage", "a.b.c", "....", "eyJ.eyJ.sig", None, ""]:
        refused(garbage)


def test_alg_none_is_refused():
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    refused(f"{header.decode()}.{body.decode()}.")


def test_rs256_token_refused_in_hs_mode():
    refused(jwt.encode(claims(), RSA_KEY, algorithm="RS256"))


@pytest.fixture(scope="module")
def jwks_url():
    pub = RSA_KEY.public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub))
    jwk.update(kid="k1", alg="RS256", use="sig")
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    ec_jwk.update(kid="k2", alg="ES256", use="sig")
    body = json.dumps({"keys": [jwk, ec_jwk]}).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/.well-known/jwks.json"
    srv.shutdown()


def test_jwks_mode_accepts_rs256_and_es256(jwks_url):
    s = load_settings({**BASE, "JWT_JWKS_URL": jwks_url})
    tok = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
    assert tokens.verify_access_token(tok, s).user_id == "user-1"
    tok = jwt.encode(claims(), EC_KEY, algorithm="ES256", headers={"kid": "k2"})
    assert tokens.verify_access_token(tok, s).user_id == "user-1"


def test_hs_rs_confusion_is_refused_in_jwks_mode(jwks_url):
    """An attacker signs HS256 with the public key as the HMAC secret."""
    s = load_settings({**BASE, "JWT_JWKS_URL": jwks_url})
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps(claims()).encode(), key=SECRET, algorithm="HS256", headers={"kid": "k1"}
    )
    refused(forged, s)
    # also with the PEM itself as the secret (pyjwt refuses to sign so; build it by hand)
    import hashlib
    import hmac

    h = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode()).rstrip(b"=")
    p = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.new(pem, h + b"." + p, hashlib.sha256).digest()).rstrip(b"=")
    refused((h + b"." + p + b"." + sig).decode(), s)
    # and an HS256 token with the shared secret is no good once JWKS is configured
    refused(hs(claims()), s)


# -- tickets ----------------------------------------------------------------------------------
def ticket_claims(**over):
    now = int(time.time())
    c = {
        "sub": "user-1",
        "wid": WID,
        "aud": "collab-ws",
        "iss": "collab",
        "iat": now,
        "exp": now + 300,
        "jti": "0123456789abcdef",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_issued_ticket_verifies():
    tok, exp = tokens.issue_ticket(HS, "user-1", WID)
    t = tokens.verify_ticket(tok, HS)
    assert (t.user_id, t.workspace_id, t.expires_at) == ("user-1", WID, exp)
    assert exp - time.time() <= 300


@pytest.mark.parametrize(
    "bad",
    [
        lambda now: {"aud": "collab-api"},  # an access token is not a ticket
        lambda now: {"exp": now + 3600},  # lives longer than 5 minutes
        lambda now: {"exp": now - 60, "iat": now - 200},
        lambda now: {"iat": now + 120, "exp": now + 400},
        lambda now: {"jti": None},
        lambda now: {"wid": None},
        lambda now: {"wid": "not-a-uuid"},
        lambda now: {"sub": None},
        lambda now: {"iss": "evil"},
    ],
)
def test_bad_tickets_are_refused(bad):
    bad = bad(int(time.time()))
    refused(hs(ticket_claims(**bad)), fn=tokens.verify_ticket)


def test_ticket_with_wrong_signature_or_algorithm():
    refused(hs(ticket_claims(), key="x" * 40), fn=tokens.verify_ticket)
    refused(jwt.encode(ticket_claims(), RSA_KEY, algorithm="RS256"), fn=tokens.verify_ticket)
    refused("not-a-ticket", fn=tokens.verify_ticket)


def test_access_token_is_not_a_ticket_and_ticket_is_not_an_access_token():
    tok, _ = tokens.issue_ticket(HS, "user-1", WID)
    refused(tok)
    refused(tokens.issue_access_token(HS, "user-1"), fn=tokens.verify_ticket)


def test_a_failing_identity_provider_is_unavailable_not_hammered_and_its_old_keys_not_trusted():
    from collab.errors import Unavailable

    class Failing:
        calls = 0

        def get_jwk_set(self, refresh=False):
            Failing.calls += 1
            raise jwt.PyJWKClientError("connection refused")

    cache = tokens.JwksCache("https://idp.example.test/jwks", ttl_s=300, min_refresh_s=30)
    cache.keys, cache.fetched = {"k1": "old key"}, 0.0
    cache.client = Failing()  # type: ignore[assignment]
    with pytest.raises(Unavailable) as exc:
        cache.key("k1", now=301)  # past the TTL: refetched, and the provider fails
    assert exc.value.status == 503 and exc.value.message == "identity provider keys unavailable"
    assert cache.keys == {} and cache.fetched == 301 and Failing.calls == 1
    for now in (302, 320, 331):  # within min_refresh_s of the failure: refused, no new fetch
        with pytest.raises(Unauthorized):
            cache.key("k1", now=now)
    assert Failing.calls == 1
    with pytest.raises(Unavailable):
        cache.key("k1", now=331.5)  # 30.5 s after it: tried again
    assert Failing.calls == 2


def test_keys_are_kept_for_exactly_the_ttl_and_an_unknown_or_missing_kid_is_an_invalid_token():
    class Provider:
        calls = 0

        def get_jwk_set(self, refresh=False):
            Provider.calls += 1
            return jwt.PyJWKSet.from_dict(
                {
                    "keys": [
                        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "k1"}
                    ]
                }
            )

    cache = tokens.JwksCache("https://idp.example.test/jwks", ttl_s=300, min_refresh_s=30)
    cache.client = Provider()  # type: ignore[assignment]
    first = cache.key("k1", now=1000)
    assert Provider.calls == 1 and cache.key("k1", now=1300) is first and Provider.calls == 1  # age 300: kept
    cache.key("k1", now=1300.5)
    assert Provider.calls == 2  # past the TTL: refetched
    for kid in ("unknown", None, ""):
        with pytest.raises(Unauthorized) as exc:
            cache.key(kid, now=1301)
        assert exc.value.message == "invalid token"


def test_one_key_cache_per_identity_provider_url():
    a = tokens._jwks_client("https://idp-a.example.test/jwks")
    assert tokens._jwks_client("https://idp-a.example.test/jwks") is a
    assert tokens._jwks_client("https://idp-b.example.test/jwks") is not a
