"""AWS Signature Version 4 for form-encoded Query API requests (EC2), with the standard library only.

Only what a POST of `application/x-www-form-urlencoded` needs: no query string, no chunked or
unsigned payloads, no S3 path rules.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_request(method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    """The canonical request and its signed-header list; `headers` must be lower-case names."""
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    signed = ";".join(names)
    # Non-S3 services encode the path twice: once as sent, once more for signing.
    uri = quote(quote(path or "/", safe="/~"), safe="/~")
    payload = hashlib.sha256(body).hexdigest()
    return f"{method}\n{uri}\n\n{canonical_headers}\n{signed}\n{payload}", signed


def sign(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    when: datetime,
) -> str:
    """The Authorization header for a request whose `headers` already hold host and x-amz-date.

    `when` must be the UTC time written into x-amz-date.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    if lowered.get("x-amz-date") != stamp:
        raise ValueError("x-amz-date must be the signing time")
    date = stamp[:8]
    request, signed = canonical_request(method, path, lowered, body)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(signing_key(secret_key, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
