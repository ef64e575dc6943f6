"""Our SigV4 signer against botocore's, on the requests the EC2 Query client sends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from core import sigv4

WHEN = datetime(2026, 11, 27, 13, 5, 9, tzinfo=UTC)
STAMP = "20261127T130509Z"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_authorization(url: str, headers: dict[str, str], body: bytes, token: str | None) -> str:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context["timestamp"] = STAMP
    auth = SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "ec2", "eu-west-1"
    )
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    scope = f"{STAMP[:8]}/eu-west-1/ec2/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders={signed}, Signature={signature}"


@pytest.mark.parametrize(
    ("url", "host", "path", "token", "body"),
    [
        ("https://ec2.eu-west-1.amazonaws.com/", "ec2.eu-west-1.amazonaws.com", "/", None, b"Action=DescribeTags"),
        (
            "http://127.0.0.1:5000/",
            "127.0.0.1:5000",
            "/",
            "FwoGZXIvYXdzEJr//////////wEaDO+token==",
            b"Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Aconsul-cluster&Filter.1.Value.1=a%20b",
        ),
        ("http://127.0.0.1:5000/prefix/ec2 x", "127.0.0.1:5000", "/prefix/ec2 x", None, b""),
    ],
)
def test_signature_matches_botocore(url: str, host: str, path: str, token: str | None, body: bytes) -> None:
    headers = {
        "host": host,
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "x-amz-date": STAMP,
    }
    if token:
        headers["x-amz-security-token"] = token
    ours = sigv4.sign(
        method="POST",
        path=path,
        headers=headers,
        body=body,
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
        region="eu-west-1",
        service="ec2",
        when=WHEN,
    )
    assert ours == botocore_authorization(url.replace(" ", "%20"), headers, body, token)


def test_signing_time_must_match_the_date_header() -> None:
    with pytest.raises(ValueError, match="x-amz-date"):
        sigv4.sign(
            method="POST",
            path="/",
            headers={"host": "h", "x-amz-date": "20260101T000000Z"},
            body=b"",
            access_key="a",
            secret_key="s",
            region="r",
            service="ec2",
            when=WHEN,
        )
