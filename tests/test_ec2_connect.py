"""Which EC2 client a setup gets: the lean one where it can serve it, boto3 otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.connect import open_ec2
from tagjoin.core.ec2_query import QueryEc2
from tagjoin.core.errors import ConfigError
from tagjoin.core.settings import AwsSettings

ROOT = Path(__file__).resolve().parent.parent
AWS = AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9")
KEYS = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_EC2_METADATA_DISABLED": "true"}


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # HOME in tmp_path keeps this machine's ~/.aws out of the decision.
    return {"HOME": str(tmp_path), **KEYS, **extra}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, QueryEc2),
        ({"TAGJOIN_EC2_CLIENT": "boto3"}, BotoEc2),
        ({"TAGJOIN_EC2_CLIENT": "query"}, QueryEc2),
        ({"http_proxy": "http://proxy:3128"}, BotoEc2),
        ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,127.0.0.1"}, QueryEc2),
        ({"HTTPS_PROXY": "http://proxy:3128"}, QueryEc2),  # the endpoint is plain http
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, BotoEc2),
        # urllib reads the lowercase spelling first, even empty: NO_PROXY does not count then.
        ({"http_proxy": "http://proxy:3128", "no_proxy": "", "NO_PROXY": "127.0.0.1"}, BotoEc2),
        ({"http_proxy": "http://proxy:3128", "no_proxy": "127.0.0.1:9"}, QueryEc2),
        ({"http_proxy": "http://proxy:3128", "no_proxy": "127.0.0.1:8443"}, BotoEc2),
        ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}, QueryEc2),  # env keys come first
    ],
    ids=[
        "auto",
        "boto3",
        "query",
        "proxy",
        "no-proxy",
        "other-scheme-proxy",
        "fips",
        "empty-lowercase-no-proxy",
        "no-proxy-with-port",
        "no-proxy-other-port",
        "env-keys-first",
    ],
)
def test_choice(tmp_path: Path, extra: dict[str, str], expected: type) -> None:
    assert isinstance(open_ec2(AWS, env(tmp_path, **extra)), expected)


def test_profile_that_assumes_a_role_goes_to_boto3(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(
        "[profile ops]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\n"
    )
    (tmp_path / ".aws" / "credentials").write_text("[b]\naws_access_key_id = a\naws_secret_access_key = b\n")
    chosen = {"HOME": str(tmp_path), "AWS_PROFILE": "ops", "AWS_EC2_METADATA_DISABLED": "true"}
    assert isinstance(open_ec2(AWS, chosen), BotoEc2)
    with pytest.raises(ConfigError, match="TAGJOIN_EC2_CLIENT=query cannot serve this setup"):
        open_ec2(AWS, {**chosen, "TAGJOIN_EC2_CLIENT": "query"})


def test_bad_choice_and_missing_region(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TAGJOIN_EC2_CLIENT"):
        open_ec2(AWS, env(tmp_path, TAGJOIN_EC2_CLIENT="curl"))
    with pytest.raises(ConfigError, match="region"):
        open_ec2(AwsSettings(region=None), env(tmp_path))


def test_lean_path_never_imports_botocore(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tagjoin.core.settings import AwsSettings\n"
        "from tagjoin.core.aws.connect import open_ec2\n"
        "import tagjoin.core.cli, tagjoin.core.aws.tag_store, tagjoin.core.discover, tagjoin.core.handoff\n"
        f"api = open_ec2(AwsSettings(region='eu-west-1', endpoint_url='http://127.0.0.1:9'), {env(tmp_path)!r})\n"
        "print(type(api).__name__, sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "QueryEc2 []"


def test_regions_of_other_partitions_go_to_boto3(tmp_path: Path) -> None:
    assert isinstance(open_ec2(AwsSettings(region="us-iso-east-1"), env(tmp_path)), BotoEc2)
    assert isinstance(open_ec2(AwsSettings(region="eu-west-1"), env(tmp_path)), QueryEc2)
