"""AWS Signature Version 4 for the Management API (service ``execute-api``).

Why not botocore: a boto3 ``post_to_connection`` costs ~770 us of CPU and botocore's signer alone
~95 us; fan-out is CPU-bound, so the signer is the hot path. This one signs a request in ~15 us and
is tested to produce byte-for-byte the signature botocore's ``SigV4Auth`` produces for the same input.
The signing key is derived once per (secret, day, region) and cached.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

SERVICE = "execute-api"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def env_credentials() -> Credentials | None:
    """Lambda puts the function role's credentials in the environment."""
    ak, sk = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if ak and sk:
        return Credentials(ak, sk, os.environ.get("AWS_SESSION_TOKEN") or None)
    return None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


_key_cache: dict[tuple[str, str, str], bytes] = {}


def signing_key(secret: str, day: str, region: str) -> bytes:
    k = _key_cache.get((secret, day, region))
    if k is None:
        k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), SERVICE), "aws4_request")
        if len(_key_cache) > 8:
            _key_cache.clear()
        _key_cache[(secret, day, region)] = k
    return k


def canonical_path(path: str) -> str:
    """The path as sent is already percent-encoded once; SigV4 (non-S3) encodes it again."""
    return quote(path, safe="/~")


def sign(
    method: str,
    host: str,
    path: str,
    body: bytes,
    creds: Credentials,
    region: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers (``Authorization``, ``X-Amz-Date``, ...) for a request without a query string."""
    t = now or datetime.now(UTC)
    amz_date = t.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-date": amz_date}
    if creds.token:
        headers["x-amz-security-token"] = creds.token
    names = sorted(headers)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            method,
            canonical_path(path),
            "",
            "".join(f"{n}:{headers[n]}\n" for n in names),
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(
        signing_key(creds.secret_key, day, region), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out = {
        "X-Amz-Date": amz_date,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        ),
    }
    if creds.token:
        out["X-Amz-Security-Token"] = creds.token
    return out
