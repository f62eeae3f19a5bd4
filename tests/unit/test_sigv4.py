"""Our SigV4 signer must produce exactly botocore's signature for the same request."""

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCreds
from hypothesis import given, settings
from hypothesis import strategies as st

from collab.adapters.apigw import sigv4

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


@pytest.mark.parametrize("token", [None, "tok"])
@given(cid=CONN_IDS, body=st.binary(max_size=100))
@settings(max_examples=40, deadline=None)
def test_requests_built_for_a_fanout_carry_botocores_signature(token, cid, body):
    """The request bytes ManagementApi sends (path, headers, body) sign exactly as botocore would."""
    from collab.adapters.apigw.management import ManagementApi

    creds = sigv4.Credentials("AKIDEXAMPLE", "secret/key+example", token)
    api = ManagementApi("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", credentials=creds)
    host = "abc123.execute-api.eu-west-1.amazonaws.com"
    from urllib.parse import quote

    for method, payload in (("POST", body), ("DELETE", b"")):
        url = f"https://{host}/prod/@connections/{quote(cid, safe='')}"
        theirs = botocore_headers(method, url, payload, creds, "eu-west-1")
        when = datetime.strptime(theirs["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        raw = api._requests(method, [(cid, payload)], now=when)[0]
        head, _, sent_body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        verb, path, _ = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert verb == method and sent_body == payload and f"https://{host}{path}" == url
        assert int(headers["Content-Length"]) == len(payload)
        assert headers["Authorization"] == theirs["Authorization"]
        assert headers.get("X-Amz-Security-Token") == token


@pytest.mark.parametrize("token", [None, "session-token-xyz"])
def test_a_secrets_manager_call_signs_as_botocore_signs_it(token):
    """GetSecretValue without boto3: a JSON POST whose every header is signed, as botocore signs."""
    creds = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    host = "secretsmanager.eu-west-1.amazonaws.com"
    body = b'{"SecretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"}'
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"}
    req = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers=dict(headers))
    SigV4Auth(BotoCreds(creds.access_key, creds.secret_key, token), "secretsmanager", "eu-west-1").add_auth(
        req
    )
    theirs = dict(req.headers)
    when = datetime.strptime(theirs["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4.sign_request(
        "POST", host, "/", headers, body, creds, "eu-west-1", "secretsmanager", now=when
    )
    assert ours["Authorization"] == theirs["Authorization"]
