"""Our SigV4 signer must produce exactly botocore's signature for the same request."""

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCreds
from hypothesis import given, settings
from hypothesis import strategies as st

from collab import sigv4

CONN_IDS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=+/-_", min_size=1, max_size=24
)


def botocore_headers(method, url, body, creds, region):
    req = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(BotoCreds(creds.access_key, creds.secret_key, creds.token), "execute-api", region).add_auth(req)
    return dict(req.headers)


@pytest.mark.parametrize("token", [None, "session-token-xyz"])
@given(cid=CONN_IDS, body=st.binary(max_size=200))
@settings(max_examples=60, deadline=None)
def test_signature_matches_botocore(token, cid, body):
    from urllib.parse import quote

    creds = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    host = "abc123.execute-api.eu-west-1.amazonaws.com"
    path = f"/prod/@connections/{quote(cid, safe='')}"
    theirs = botocore_headers("POST", f"https://{host}{path}", body, creds, "eu-west-1")
    when = datetime.strptime(theirs["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4.sign("POST", host, path, body, creds, "eu-west-1", now=when)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"]
    if token:
        assert ours["X-Amz-Security-Token"] == token
