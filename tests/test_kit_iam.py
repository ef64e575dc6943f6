"""The kit's IAM policies and CloudFormation template, checked by parliament, cfn-lint and by evaluation.

moto ignores IAM conditions (it evaluates actions only), and parliament accepted the vacuous
`ForAllValues` condition this kit once shipped, so neither can say whether a request is allowed.
`allowed()` below evaluates the few parts of IAM's policy logic these policies use, as AWS
documents them (IAM User Guide, "Policy evaluation logic" and "Condition operators"):

- a request is allowed when some Allow statement matches its action, its resource and every
  condition; nothing here denies explicitly, so no Deny statement is needed;
- the condition operators in one block all have to hold (AND); for one key the values listed are
  alternatives (OR);
- `StringEquals` on a key the request does not carry is false;
- `ForAllValues:StringEquals` holds when every value the request carries is listed, and so also
  when the request carries none: that is the vacuous case the `Null` condition closes;
- `Null: "false"` holds when the request carries the key, `"true"` when it does not;
- `Resource` patterns match with `*` and `?` as wildcards.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from tagjoin.core.deploy_kit import build_kit
from tagjoin.core.kit_iam import client_policy, cloudformation_template, server_policy
from tagjoin.core.settings import Scope

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SCOPE = Scope(cluster="prod")
OURS = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
Context = Mapping[str, str | Sequence[str]]


def allowed(policy: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    return any(_matches(s, action, resource, context) for s in policy["Statement"] if s["Effect"] == "Allow")


def _matches(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    if not any(fnmatch.fnmatchcase(action, a) for a in actions):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _holds(operator, context.get(key), wanted if isinstance(wanted, list) else [wanted]):
                return False
    return True


def _holds(operator: str, value: str | Sequence[str] | None, wanted: list[str]) -> bool:
    if operator == "StringEquals":
        return isinstance(value, str) and value in wanted
    if operator == "ForAllValues:StringEquals":
        return all(v in wanted for v in (value or []))
    if operator == "Null":
        (expect_absent,) = wanted
        return (value is None) == (expect_absent == "true")
    raise AssertionError(f"the evaluator does not know {operator}; teach it before using it in a policy")


SERVER = server_policy(SCOPE, region=REGION, account=ACCOUNT)
CLIENT = client_policy(REGION)
IN_REGION = {"aws:RequestedRegion": REGION}
ON_OURS = {**IN_REGION, "aws:ResourceTag/consul-cluster": "prod"}


@pytest.mark.parametrize(
    ("action", "resource", "context", "expected", "why"),
    [
        ("ec2:CreateTags", OURS, {**ON_OURS, "aws:TagKeys": ["consul-leader"]}, True, "the leader moves the tag"),
        ("ec2:DeleteTags", OURS, {**ON_OURS, "aws:TagKeys": ["consul-leader"]}, True, "and removes the old one"),
        ("ec2:DeleteTags", OURS, ON_OURS, False, "a DeleteTags naming no tags deletes all of them"),
        ("ec2:DeleteTags", OURS, {**ON_OURS, "aws:TagKeys": ["consul-cluster"]}, False, "the cluster tag is not ours"),
        (
            "ec2:CreateTags",
            OURS,
            {**ON_OURS, "aws:TagKeys": ["consul-leader", "consul-cluster"]},
            False,
            "one foreign key spoils the request",
        ),
        (
            "ec2:CreateTags",
            OURS,
            {**IN_REGION, "aws:ResourceTag/consul-cluster": "staging", "aws:TagKeys": ["consul-leader"]},
            False,
            "another cluster's instance",
        ),
        ("ec2:CreateTags", OURS, {**IN_REGION, "aws:TagKeys": ["consul-leader"]}, False, "an instance of no cluster"),
        (
            "ec2:CreateTags",
            OURS.replace(REGION, "us-east-1"),
            {**ON_OURS, "aws:TagKeys": ["consul-leader"]},
            False,
            "another region",
        ),
        (
            "ec2:CreateTags",
            OURS.replace(ACCOUNT, "999999999999"),
            {**ON_OURS, "aws:TagKeys": ["consul-leader"]},
            False,
            "another account",
        ),
        ("ec2:DescribeInstances", "*", IN_REGION, True, "reads in the region"),
        ("ec2:DescribeTags", "*", {"aws:RequestedRegion": "us-east-1"}, False, "no reads elsewhere"),
        ("ec2:TerminateInstances", OURS, ON_OURS, False, "nothing else"),
    ],
)
def test_server_policy_conditions(action: str, resource: str, context: Context, expected: bool, why: str) -> None:
    assert allowed(SERVER, action, resource, context) is expected, why


def test_the_null_condition_is_what_denies_the_tagless_delete() -> None:
    """Without it the policy is the vacuous one: the evaluator must see the difference, or it proves nothing."""
    vacuous = copy.deepcopy(SERVER)
    del vacuous["Statement"][1]["Condition"]["Null"]  # type: ignore[index]
    assert allowed(vacuous, "ec2:DeleteTags", OURS, ON_OURS)
    assert not allowed(SERVER, "ec2:DeleteTags", OURS, ON_OURS)


@pytest.mark.parametrize("action", ["ec2:CreateTags", "ec2:DeleteTags"])
def test_clients_never_write(action: str) -> None:
    assert not allowed(CLIENT, action, OURS, {**ON_OURS, "aws:TagKeys": ["consul-leader"]})
    assert allowed(CLIENT, "ec2:DescribeInstances", "*", IN_REGION)


@pytest.mark.parametrize(
    "policy",
    [SERVER, CLIENT, server_policy(Scope(), region=REGION, account=None), client_policy(None)],
    ids=["server", "client", "server-no-cluster", "client-no-region"],
)
def test_parliament_finds_nothing(policy: dict[str, object]) -> None:
    findings = analyze_policy_string(json.dumps(policy), include_community_auditors=True).findings
    assert [(f.issue, f.detail) for f in findings] == []


def test_parliament_does_report_a_mistake() -> None:
    """The control: the same call on a policy with a misspelt action must find something."""
    broken = copy.deepcopy(SERVER)
    broken["Statement"][1]["Action"] = ["ec2:CreateTag"]  # type: ignore[index]
    assert analyze_policy_string(json.dumps(broken)).findings


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("cfn-lint")
    if not tool.exists():
        pytest.skip("cfn-lint is not installed (pip install -e '.[test]')")
    return subprocess.run([str(tool), str(path)], capture_output=True, text=True, timeout=120)


def test_cloudformation_template_passes_cfn_lint(tmp_path: Path) -> None:
    kit = build_kit(SCOPE, region=REGION, account=ACCOUNT)
    path = tmp_path / "cloudformation.json"
    path.write_text(kit["cloudformation.json"])
    done = _cfn_lint(path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    broken = json.loads(kit["cloudformation.json"])
    broken["Resources"]["ServerInstanceProfile"]["Type"] = "AWS::IAM::InstanceProfil"
    path.write_text(json.dumps(broken))
    assert _cfn_lint(path).returncode != 0


def test_cloudformation_roles_carry_the_same_conditions() -> None:
    template = cloudformation_template(SCOPE)
    resources: dict[str, Any] = template["Resources"]  # type: ignore[assignment]
    server_doc = resources["ServerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    client_doc = resources["ClientRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert server_doc["Statement"][1]["Condition"] == SERVER["Statement"][1]["Condition"]  # type: ignore[index]
    assert [s["Action"] for s in client_doc["Statement"]] == [["ec2:DescribeInstances", "ec2:DescribeTags"]]
    assert "AWSTemplateFormatVersion" in template
