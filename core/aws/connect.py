"""Which EC2 client a command gets: the lean Query client where it can serve the setup, else boto3."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from tagjoin.core.aws.ec2_api import Ec2Api
from tagjoin.core.errors import ConfigError
from tagjoin.core.proxies import proxied
from tagjoin.core.settings import AwsSettings

log = logging.getLogger(__name__)

CHOICES = ("auto", "query", "boto3")
_TRUE = ("true", "1", "yes")


class NeedsBoto3(Exception):
    """The setup needs something only botocore implements; the message names it."""


def open_ec2(aws: AwsSettings, env: Mapping[str, str] | None = None) -> Ec2Api:
    """An `Ec2Api` for `aws`, chosen by TAGJOIN_EC2_CLIENT (auto, query or boto3; auto by default).

    auto takes the lean client unless the setup needs botocore (see `lean_client`); boto3 is
    then imported only here, so a node that never needs it never pays for it.
    """
    env = os.environ if env is None else env
    choice = (env.get("TAGJOIN_EC2_CLIENT") or "auto").strip().lower()
    if choice not in CHOICES:
        raise ConfigError(f"TAGJOIN_EC2_CLIENT={choice!r} is not one of {', '.join(CHOICES)}")
    if choice != "boto3":
        try:
            return lean_client(aws, env)
        except NeedsBoto3 as exc:
            if choice == "query":
                raise ConfigError(f"TAGJOIN_EC2_CLIENT=query cannot serve this setup ({exc}); unset it") from None
            log.debug("EC2 through boto3: %s", exc)
    from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client

    return BotoEc2(make_ec2_client(aws))


def lean_client(aws: AwsSettings, env: Mapping[str, str]) -> Ec2Api:
    """The standard-library client, or NeedsBoto3 saying why it can't serve this setup (no network)."""
    from tagjoin.core.aws_credentials import CredentialChain, NeedsBotocore
    from tagjoin.core.ec2_query import QueryEc2, default_endpoint

    region = aws.require_region()
    for flag in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if (env.get(flag) or "").strip().lower() in _TRUE:
            raise NeedsBoto3(flag)
    endpoint = aws.endpoint_url or default_endpoint(region)
    if endpoint is None:
        raise NeedsBoto3(f"region {region} is outside the partitions the lean client knows")
    parts = urlsplit(endpoint)
    if proxied(env, parts.scheme, (parts.hostname or "").lower(), _port(parts)):
        raise NeedsBoto3("an HTTP proxy")
    chain = CredentialChain(env, home=Path(env["HOME"]) if env.get("HOME") else None)
    try:
        chain.check_supported()
    except NeedsBotocore as exc:
        raise NeedsBoto3(str(exc)) from None
    return QueryEc2(endpoint, region, chain.get, ca_bundle=env.get("AWS_CA_BUNDLE") or None)


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None  # QueryEc2 reports the bad port as a configuration error
