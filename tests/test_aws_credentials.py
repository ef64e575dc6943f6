"""The stdlib credential chain: botocore's answers for the static setups, the instance role over loopback.

Every env is passed explicitly and HOME is a tmp dir, so nothing on the test machine leaks in. The
parity checks run botocore on the same env and files; `env()` disables the metadata service unless a
test points it at loopback, so a divergence fails the test instead of reaching a real one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import PartialCredentialsError, ProfileNotFound

from tagjoin.core.aws_credentials import RETRY_PAUSE, CredentialChain, Credentials, NeedsBotocore
from tagjoin.core.errors import ConfigError, Ec2Error
from tagjoin.sim.aws.moto_endpoint import MotoServer

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRETz"
TOKEN = "FwoGZXIvYXdzEXAMPLEzTOKENz"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/"

Keys = tuple[str, str, str | None]


def env(**values: str) -> dict[str, str]:
    return {"AWS_EC2_METADATA_DISABLED": "true", **values}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def aws_files(home: Path, *, credentials: str | None = None, config: str | None = None) -> None:
    if credentials is not None:
        write(home / ".aws" / "credentials", credentials)
    if config is not None:
        write(home / ".aws" / "config", config)


def keys(creds: Credentials) -> Keys:
    return creds.access_key, creds.secret_key, creds.token


@pytest.fixture
def botocore_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[dict[str, str]], Keys]:
    """What botocore resolves for this env with HOME at tmp_path."""

    def resolve(values: dict[str, str]) -> Keys:
        for name in list(os.environ):
            if name.startswith("AWS_") or name == "BOTO_CONFIG" or name.lower().endswith("_proxy"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(tmp_path))
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        found = botocore.session.Session().get_credentials()
        assert found is not None, "botocore found no credentials"
        frozen = found.get_frozen_credentials()
        assert frozen.access_key is not None and frozen.secret_key is not None
        return frozen.access_key, frozen.secret_key, frozen.token

    return resolve


# --- environment -------------------------------------------------------------------------------


def test_env_keys_with_session_token(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    values = env(AWS_ACCESS_KEY_ID="AKIAENV", AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN)
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    creds = chain.get()
    assert keys(creds) == ("AKIAENV", SECRET, TOKEN)
    assert creds.source == "environment"
    assert creds.expires_at is None
    assert keys(creds) == botocore_keys(values)


def test_env_keys_without_token(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    values = env(AWS_ACCESS_KEY_ID="AKIAENV", AWS_SECRET_ACCESS_KEY=SECRET)
    creds = CredentialChain(values, home=tmp_path).get()
    assert keys(creds) == ("AKIAENV", SECRET, None) == botocore_keys(values)


def test_env_security_token_wins_over_session_token_as_in_botocore(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    values = env(
        AWS_ACCESS_KEY_ID="AKIAENV",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_SESSION_TOKEN="session-token",
        AWS_SECURITY_TOKEN="security-token",
    )
    creds = CredentialChain(values, home=tmp_path).get()
    assert creds.token == "security-token"
    assert keys(creds) == botocore_keys(values)


def test_env_access_key_without_secret_is_partial(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    values = env(AWS_ACCESS_KEY_ID="AKIAENV", AWS_SESSION_TOKEN=TOKEN)
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()  # botocore stops on partial keys too, so there is nothing to fall back to
    with pytest.raises(Ec2Error, match="partial credentials in the environment") as caught:
        chain.get()
    assert "\n" not in str(caught.value)
    assert TOKEN not in str(caught.value)
    with pytest.raises(PartialCredentialsError):
        botocore_keys(values)


def test_env_secret_without_access_key_is_ignored_as_in_botocore(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    aws_files(tmp_path, credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file-secret\n")
    values = env(AWS_SECRET_ACCESS_KEY=SECRET)
    creds = CredentialChain(values, home=tmp_path).get()
    assert keys(creds) == ("AKIAFILE", "file-secret", None) == botocore_keys(values)


def test_env_keys_beat_aws_profile(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    aws_files(
        tmp_path,
        credentials="[prod]\naws_access_key_id = AKIAPROD\naws_secret_access_key = prod-secret\n",
        config="[profile prod]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = prod\n",
    )
    values = env(AWS_PROFILE="prod", AWS_ACCESS_KEY_ID="AKIAENV", AWS_SECRET_ACCESS_KEY=SECRET)
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()  # the role_arn is never consulted: the env keys come first
    assert keys(chain.get()) == ("AKIAENV", SECRET, None) == botocore_keys(values)


# --- shared files ------------------------------------------------------------------------------


def test_credentials_file_profile(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    aws_files(
        tmp_path,
        credentials=(
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n"
            f"[prod]\naws_access_key_id = AKIAPROD\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"
        ),
    )
    values = env(AWS_PROFILE="prod")
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    creds = chain.get()
    assert keys(creds) == ("AKIAPROD", SECRET, TOKEN) == botocore_keys(values)
    assert creds.source == "profile prod (~/.aws/credentials)"


def test_config_file_profile_section(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    aws_files(
        tmp_path,
        config=(
            "[default]\nregion = eu-west-1\n"
            f"[profile x]\nregion = us-east-1\naws_access_key_id = AKIAX\naws_secret_access_key = {SECRET}\n"
        ),
    )
    values = env(AWS_PROFILE="x")
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    creds = chain.get()
    assert keys(creds) == ("AKIAX", SECRET, None) == botocore_keys(values)
    assert creds.source == "profile x (~/.aws/config)"


@pytest.mark.parametrize("section", ["[default]", "[profile default]"])
def test_default_profile_in_config_file(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys], section: str
) -> None:
    aws_files(tmp_path, config=f"{section}\naws_access_key_id = AKIADEF\naws_secret_access_key = {SECRET}\n")
    values = env()
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    assert keys(chain.get()) == ("AKIADEF", SECRET, None) == botocore_keys(values)


def test_credentials_file_beats_config_file(tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]) -> None:
    aws_files(
        tmp_path,
        credentials="[prod]\naws_access_key_id = AKIACREDS\naws_secret_access_key = creds-secret\n",
        config="[profile prod]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = config-secret\n",
    )
    values = env(AWS_PROFILE="prod")
    creds = CredentialChain(values, home=tmp_path).get()
    assert keys(creds) == ("AKIACREDS", "creds-secret", None) == botocore_keys(values)


def test_aws_default_profile_wins_over_aws_profile_as_in_botocore(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    aws_files(
        tmp_path,
        credentials=(
            "[a]\naws_access_key_id = AKIAA\naws_secret_access_key = a-secret\n"
            "[b]\naws_access_key_id = AKIAB\naws_secret_access_key = b-secret\n"
        ),
    )
    values = env(AWS_PROFILE="a", AWS_DEFAULT_PROFILE="b")
    assert keys(CredentialChain(values, home=tmp_path).get()) == ("AKIAB", "b-secret", None) == botocore_keys(values)


def test_file_locations_from_env_expand_the_home_dir(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    write(tmp_path / "elsewhere" / "creds", f"[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = {SECRET}\n")
    write(tmp_path / "elsewhere" / "conf", "[profile ops]\nregion = eu-west-1\n")
    values = env(AWS_PROFILE="ops", AWS_SHARED_CREDENTIALS_FILE="~/elsewhere/creds", AWS_CONFIG_FILE="~/elsewhere/conf")
    creds = CredentialChain(values, home=tmp_path).get()
    assert keys(creds) == ("AKIAOPS", SECRET, None) == botocore_keys(values)
    assert creds.source == "profile ops (~/elsewhere/creds)"


def test_file_locations_from_env_expand_variables(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    write(tmp_path / "etc" / "creds", f"[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = {SECRET}\n")
    values = env(AWS_PROFILE="ops", CREDS_DIR=str(tmp_path / "etc"), AWS_SHARED_CREDENTIALS_FILE="${CREDS_DIR}/creds")
    assert keys(CredentialChain(values, home=tmp_path).get()) == ("AKIAOPS", SECRET, None) == botocore_keys(values)


def test_profile_with_access_key_but_no_secret_is_partial(tmp_path: Path) -> None:
    aws_files(tmp_path, credentials=f"[prod]\naws_access_key_id = AKIAPROD\naws_session_token = {TOKEN}\n")
    chain = CredentialChain(env(AWS_PROFILE="prod"), home=tmp_path)
    with pytest.raises(Ec2Error, match=r"partial credentials in profile prod \(~/.aws/credentials\)") as caught:
        chain.get()
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("variable", ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
def test_missing_named_profile_is_a_config_error(
    tmp_path: Path, botocore_keys: Callable[[dict[str, str]], Keys], variable: str
) -> None:
    aws_files(tmp_path, credentials="[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = s\n")
    values = env(**{variable: "staging", "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": SECRET})
    chain = CredentialChain(values, home=tmp_path)
    expected = rf"The config profile \(staging\) could not be found; fix {variable} or ~/.aws/config"
    with pytest.raises(ConfigError, match=expected):
        chain.check_supported()
    with pytest.raises(ConfigError, match=expected):
        chain.get()
    with pytest.raises(ProfileNotFound):  # even though the env keys would otherwise win
        botocore_keys(values)


def test_default_profile_may_be_absent_when_not_named(tmp_path: Path) -> None:
    chain = CredentialChain(env(), home=tmp_path)
    chain.check_supported()
    with pytest.raises(Ec2Error, match="no AWS credentials"):
        chain.get()


def test_broken_ini_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    aws_files(tmp_path, credentials=f"[default]\naws_access_key_id = AKIA\nthis line is not ini {SECRET}\n")
    chain = CredentialChain(env(), home=tmp_path)
    with pytest.raises(ConfigError) as caught:
        chain.check_supported()
    message = str(caught.value)
    assert str(tmp_path / ".aws" / "credentials") in message
    assert "line 3" in message
    assert SECRET not in message
    assert "\n" not in message


def test_duplicate_section_is_a_config_error(tmp_path: Path) -> None:
    aws_files(tmp_path, config="[profile a]\nregion = x\n[profile a]\nregion = y\n")
    with pytest.raises(ConfigError, match=r"config \(line 3\): not a valid INI file"):
        CredentialChain(env(), home=tmp_path).check_supported()


def test_unreadable_file_counts_as_empty(tmp_path: Path) -> None:
    (tmp_path / ".aws" / "credentials").mkdir(parents=True)  # a directory where the file should be
    values = env(AWS_ACCESS_KEY_ID="AKIAENV", AWS_SECRET_ACCESS_KEY=SECRET)
    assert CredentialChain(values, home=tmp_path).get().access_key == "AKIAENV"


# --- sources left to botocore ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "config", "values", "named"),
    [
        pytest.param(
            None,
            "[profile prod]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = base\n[profile base]\n",
            {"AWS_PROFILE": "prod"},
            "role_arn in profile prod",
            id="role_arn",
        ),
        pytest.param(
            "[default]\ncredential_process = /usr/local/bin/creds\n",
            None,
            {},
            "credential_process in profile default",
            id="credential_process",
        ),
        pytest.param(
            None,
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\n[sso-session corp]\nsso_region = us-east-1\n",
            {"AWS_PROFILE": "dev"},
            "sso_session in profile dev",
            id="sso_session",
        ),
        pytest.param(
            None,
            None,
            {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"},
            "container credentials",
            id="container-relative",
        ),
        pytest.param(
            None,
            None,
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
            "container credentials",
            id="container-full",
        ),
        pytest.param(
            None,
            None,
            {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/x"},
            "web identity",
            id="web-identity",
        ),
        pytest.param(
            None,
            "[default]\nendpoint_url = https://ec2.example.internal\n",
            {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": SECRET},
            "endpoint_url in profile default",
            id="endpoint_url-even-with-env-keys",
        ),
        pytest.param(
            None,
            None,
            {"AWS_CREDENTIAL_FILE": "/etc/aws-credentials"},
            "AWS_CREDENTIAL_FILE",
            id="ec2-api-tools-file",
        ),
        pytest.param(
            None,
            None,
            {"AWS_EC2_METADATA_DISABLED": "false", "http_proxy": "http://proxy.internal:3128"},
            "proxy",
            id="imds-through-proxy",
        ),
    ],
)
def test_sources_only_botocore_implements(
    tmp_path: Path, credentials: str | None, config: str | None, values: dict[str, str], named: str
) -> None:
    aws_files(tmp_path, credentials=credentials, config=config)
    with pytest.raises(NeedsBotocore, match=named):
        CredentialChain(env(**values), home=tmp_path).check_supported()


def test_boto_config_with_keys_is_left_to_botocore(tmp_path: Path) -> None:
    boto = write(tmp_path / "boto.cfg", "[Credentials]\naws_access_key_id = AKIABOTO\naws_secret_access_key = s\n")
    with pytest.raises(NeedsBotocore, match="boto config file"):
        CredentialChain(env(BOTO_CONFIG=str(boto)), home=tmp_path).check_supported()


def test_static_profile_keys_come_before_container_credentials(tmp_path: Path) -> None:
    aws_files(tmp_path, credentials=f"[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = {SECRET}\n")
    chain = CredentialChain(env(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/creds"), home=tmp_path)
    chain.check_supported()
    assert chain.get().access_key == "AKIAFILE"


def test_no_proxy_entry_keeps_imds_direct(tmp_path: Path) -> None:
    values = {"HTTP_PROXY": "http://proxy.internal:3128", "NO_PROXY": "localhost,169.254.169.254"}
    CredentialChain(values, home=tmp_path).check_supported()


def test_metadata_disabled_means_no_credentials(tmp_path: Path) -> None:
    chain = CredentialChain({"AWS_EC2_METADATA_DISABLED": "TRUE"}, home=tmp_path)
    chain.check_supported()
    with pytest.raises(Ec2Error) as caught:
        chain.get()
    message = str(caught.value)
    assert "\n" not in message
    hints = ("AWS_EC2_METADATA_DISABLED", "instance role", "AWS_PROFILE", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    assert all(hint in message for hint in hints)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"AWS_METADATA_SERVICE_TIMEOUT": "soon"}, "AWS_METADATA_SERVICE_TIMEOUT"),
        ({"AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"}, "AWS_METADATA_SERVICE_NUM_ATTEMPTS"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipv5"}, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"}, "AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    ],
)
def test_bad_metadata_settings_are_config_errors(tmp_path: Path, values: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CredentialChain(values, home=tmp_path).check_supported()


def test_repr_and_str_hide_secrets(tmp_path: Path) -> None:
    creds = CredentialChain(
        env(AWS_ACCESS_KEY_ID="AKIAENV", AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN), home=tmp_path
    ).get()
    for text in (repr(creds), str(creds)):
        assert "AKIAENV" in text
        assert SECRET not in text
        assert TOKEN not in text


# --- instance metadata: moto -------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_imds() -> Iterator[str]:
    with MotoServer() as server:
        yield server.url + "/"


def test_instance_role_from_moto(
    tmp_path: Path, moto_imds: str, botocore_keys: Callable[[dict[str, str]], Keys]
) -> None:
    values = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": moto_imds}
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    creds = chain.get()
    assert keys(creds) == ("test-key", "test-secret-key", "test-session-token")
    assert creds.source == "instance role default-role"
    assert creds.expires_at is not None
    assert 23 * 3600 < creds.expires_at - time.time() <= 24 * 3600
    assert keys(creds) == botocore_keys({**values, "AWS_EC2_METADATA_DISABLED": "false"})


# --- instance metadata: a scripted stand-in ----------------------------------------------------


def role_doc(access_key: str, expires_at: float) -> bytes:
    expiration = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": access_key,
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": expiration,
    }
    return json.dumps(doc).encode()


@dataclass
class FakeImds:
    token_status: int = 200
    stall_token: bool = False  # hold the PUT unanswered, as a hop limit of 1 does for a container
    role_status: int = 200
    role: str = "node-role"
    bodies: list[bytes] = field(default_factory=lambda: [role_doc("ASIAROLE", time.time() + 6 * 3600)])
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, token header
    release: threading.Event = field(default_factory=threading.Event)
    served: int = 0

    def credentials_body(self) -> bytes:
        body = self.bodies[min(self.served, len(self.bodies) - 1)]
        self.served += 1
        return body


class FakeImdsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeImds, host: str = "127.0.0.1", family: socket.AddressFamily = socket.AF_INET) -> None:
        self.address_family = family
        super().__init__((host, 0), FakeImdsHandler)
        self.fake = fake

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the stalled PUT writes to a socket the client has already given up on


class FakeImdsHandler(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        fake = self.fake()
        fake.requests.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
        if fake.stall_token:
            fake.release.wait(10)
        self.reply(fake.token_status, b"imds-token-1")

    def do_GET(self) -> None:
        fake = self.fake()
        fake.requests.append(("GET", self.path, self.headers.get("X-aws-ec2-metadata-token")))
        if self.path == ROLE_PATH:
            self.reply(fake.role_status, fake.role.encode())
        elif self.path == ROLE_PATH + fake.role:
            self.reply(200, fake.credentials_body())
        else:
            self.reply(404, b"")

    def fake(self) -> FakeImds:
        assert isinstance(self.server, FakeImdsServer)
        return self.server.fake

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(fake: FakeImds, host: str = "127.0.0.1", family: socket.AddressFamily = socket.AF_INET) -> Iterator[str]:
    server = FakeImdsServer(fake, host, family)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield f"http://[{host}]:{port}/" if family == socket.AF_INET6 else f"http://{host}:{port}/"
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def imds() -> Iterator[tuple[FakeImds, str]]:
    fake = FakeImds()
    with serving(fake) as url:
        yield fake, url


def test_imdsv2_token_is_sent_on_every_get(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    creds = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert keys(creds) == ("ASIAROLE", SECRET, TOKEN)
    assert fake.requests == [
        ("PUT", "/latest/api/token", "21600"),
        ("GET", ROLE_PATH, "imds-token-1"),
        ("GET", ROLE_PATH + "node-role", "imds-token-1"),
    ]


def test_check_supported_stays_off_the_network(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).check_supported()
    assert fake.requests == []


@pytest.mark.parametrize("status", [403, 404, 405])
def test_imdsv1_fallback_when_token_refused(tmp_path: Path, imds: tuple[FakeImds, str], status: int) -> None:
    fake, url = imds
    fake.token_status = status
    creds = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert creds.access_key == "ASIAROLE"
    assert [(method, token) for method, _, token in fake.requests] == [("PUT", "21600"), ("GET", None), ("GET", None)]


def test_v1_disabled_refuses_the_fallback(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.token_status = 405
    values = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_EC2_METADATA_V1_DISABLED": "true"}
    with pytest.raises(Ec2Error, match="IMDSv1 is disabled"):
        CredentialChain(values, home=tmp_path).get()
    assert [method for method, _, _ in fake.requests] == ["PUT"]


def test_token_timeout_falls_back_to_imdsv1_like_botocore(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.stall_token = True
    values = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_METADATA_SERVICE_TIMEOUT": "0.3"}
    creds = CredentialChain(values, home=tmp_path).get()
    assert creds.access_key == "ASIAROLE"
    assert [(method, token) for method, _, token in fake.requests] == [("PUT", "21600"), ("GET", None), ("GET", None)]


def test_instance_without_role(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.role_status = 404
    with pytest.raises(Ec2Error, match="this instance has no IAM role") as caught:
        CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in str(caught.value)


def test_malformed_credentials_json(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.bodies = [b'{"AccessKeyId": "ASIAROLE", "SecretAccessKey": "' + SECRET.encode() + b'", trunc']
    with pytest.raises(Ec2Error, match="unusable credentials for instance role node-role: not JSON") as caught:
        CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert SECRET not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_credentials_json_missing_keys(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.bodies = [json.dumps({"Code": "AssumeRoleUnauthorizedAccess", "SecretAccessKey": SECRET}).encode()]
    with pytest.raises(Ec2Error, match=r"no AccessKeyId, Token, Expiration \(Code AssumeRoleUnauthorizedAccess\)"):
        CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()


def test_role_credentials_are_fetched_again_near_expiry(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    expiry = 1_900_000_000.0
    fake.bodies = [role_doc("ASIAFIRST", expiry), role_doc("ASIASECOND", expiry + 3600)]
    clock = [expiry - 600]
    chain = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path, now=lambda: clock[0])

    first = chain.get()
    assert (first.access_key, first.expires_at) == ("ASIAFIRST", expiry)
    assert len(fake.requests) == 3
    assert chain.get() is first
    assert len(fake.requests) == 3

    clock[0] = expiry - 240
    second = chain.get()
    assert (second.access_key, second.expires_at) == ("ASIASECOND", expiry + 3600)
    assert len(fake.requests) == 6


def test_failed_refresh_keeps_keys_until_they_expire(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    expiry = 1_900_000_000.0
    fake.bodies = [role_doc("ASIAFIRST", expiry)]
    clock = [expiry - 600]
    chain = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path, now=lambda: clock[0])
    first = chain.get()
    fake.role_status = 500
    clock[0] = expiry - 60
    assert chain.get() is first
    clock[0] = expiry + 1
    with pytest.raises(Ec2Error, match="HTTP 500"):
        chain.get()


def test_attempts_retry_a_failing_get(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.bodies = [b"", role_doc("ASIARETRY", time.time() + 3600)]
    values = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "2"}
    assert CredentialChain(values, home=tmp_path).get().access_key == "ASIARETRY"
    assert len(fake.requests) == 4


def test_unreachable_metadata_service_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    values = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{port}/", "AWS_METADATA_SERVICE_TIMEOUT": "0.5"}
    chain = CredentialChain(values, home=tmp_path)
    chain.check_supported()
    started = time.monotonic()
    with pytest.raises(Ec2Error, match="no instance metadata service at") as caught:
        chain.get()
    assert time.monotonic() - started < 2
    assert "AWS_PROFILE" in str(caught.value)


def test_ipv6_endpoint(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with serving(FakeImds(), "::1", socket.AF_INET6) as url:
        creds = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert creds.access_key == "ASIAROLE"


def test_malformed_role_name_never_reaches_a_request_line(tmp_path: Path, imds: tuple[FakeImds, str]) -> None:
    fake, url = imds
    fake.role = "node role"
    with pytest.raises(Ec2Error, match="malformed IAM role name"):
        CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path).get()
    assert len(fake.requests) == 2


def test_unrotated_keys_inside_the_refresh_window_are_not_asked_for_on_every_call(
    tmp_path: Path, imds: tuple[FakeImds, str]
) -> None:
    fake, url = imds
    expiry = 1_900_000_000.0
    fake.bodies = [role_doc("ASIAOLD", expiry), role_doc("ASIAOLD", expiry), role_doc("ASIANEW", expiry + 3600)]
    clock = [expiry - 600]
    chain = CredentialChain({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, home=tmp_path, now=lambda: clock[0])
    assert chain.get().access_key == "ASIAOLD"
    clock[0] = expiry - 200  # inside the window; the service has not rotated the keys yet
    assert chain.get().access_key == "ASIAOLD"
    asked = len(fake.requests)
    for step in range(5):  # a burst of EC2 calls within the pause asks the service nothing
        clock[0] = expiry - 200 + step
        assert chain.get().access_key == "ASIAOLD"
    assert len(fake.requests) == asked
    clock[0] = expiry - 200 + RETRY_PAUSE
    assert chain.get().access_key == "ASIANEW"
