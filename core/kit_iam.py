"""The deploy kit's IAM: a writing policy for the servers, a reading one for clients, and a CloudFormation template.

Why each condition is there (tests/test_kit_iam.py evaluates them request by request):

- `ForAllValues:StringEquals aws:TagKeys [leader key]`: every key a request names is the leader
  key, so no node can touch the cluster tag (leaving its cluster's scope) or any other tag.
- `Null aws:TagKeys false`: ForAllValues is true for an empty set, and a DeleteTags that names no
  tags deletes *every* tag of the instance; requiring the key to be present denies that call.
- `aws:ResourceTag/<cluster key>`: only instances of this cluster can be written.
- region and account in the ARN, `aws:RequestedRegion` on the reads: nothing outside the region.

Describe calls take no resource-level permissions in EC2, so `Resource: "*"` is the narrowest
EC2 allows for them; the region condition is what narrows them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tagjoin.core.settings import Scope

READ_ACTIONS = ["ec2:DescribeInstances", "ec2:DescribeTags"]
WRITE_ACTIONS = ["ec2:CreateTags", "ec2:DeleteTags"]

Value = str | Mapping[str, object]  # a literal, or a CloudFormation intrinsic such as {"Ref": "AWS::Region"}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def read_statement(region: Value) -> dict[str, object]:
    return {
        "Sid": "FindJoinTargets",
        "Effect": "Allow",
        "Action": list(READ_ACTIONS),
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
    }


def write_statement(scope: Scope, instance_arn: Value) -> dict[str, object]:
    condition: dict[str, object] = {
        "ForAllValues:StringEquals": {"aws:TagKeys": [scope.tag_key]},
        "Null": {"aws:TagKeys": "false"},
    }
    if scope.cluster is not None:
        condition["StringEquals"] = {f"aws:ResourceTag/{scope.cluster_tag_key}": scope.cluster}
    return {
        "Sid": "MoveLeaderTagWithinCluster",
        "Effect": "Allow",
        "Action": list(WRITE_ACTIONS),
        "Resource": instance_arn,
        "Condition": condition,
    }


def instance_arn(region: str | None, account: str | None) -> str:
    partition = partition_of(region) if region else "aws"
    return f"arn:{partition}:ec2:{region or '*'}:{account or '*'}:instance/*"


def server_policy(scope: Scope, *, region: str | None, account: str | None) -> dict[str, object]:
    """Servers read and move the leader tag; only a server can ever lead, so only servers write."""
    return {
        "Version": "2012-10-17",
        "Statement": [read_statement(region or "*"), write_statement(scope, instance_arn(region, account))],
    }


def client_policy(region: str | None) -> dict[str, object]:
    """Clients only look the tag up at boot; they never lead and never write."""
    return {"Version": "2012-10-17", "Statement": [read_statement(region or "*")]}


def cloudformation_template(scope: Scope) -> dict[str, object]:
    """Roles and instance profiles; region, account and partition come from the stack itself."""
    here_arn = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}
    here = {"Ref": "AWS::Region"}
    server_doc = {"Version": "2012-10-17", "Statement": [read_statement(here), write_statement(scope, here_arn)]}
    client_doc = {"Version": "2012-10-17", "Statement": [read_statement(here)]}
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    name = scope.cluster or "any-cluster"
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"consul-tagjoin roles for Consul cluster {name}: servers move the leader tag, clients read it",
        "Resources": {
            "ServerRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": trust,
                    "Policies": [{"PolicyName": "consul-tagjoin-server", "PolicyDocument": server_doc}],
                },
            },
            "ServerInstanceProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"Roles": [{"Ref": "ServerRole"}]},
            },
            "ClientRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": trust,
                    "Policies": [{"PolicyName": "consul-tagjoin-client", "PolicyDocument": client_doc}],
                },
            },
            "ClientInstanceProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"Roles": [{"Ref": "ClientRole"}]},
            },
        },
        "Outputs": {
            "ServerInstanceProfile": {
                "Description": "instance profile for Consul servers",
                "Value": {"Ref": "ServerInstanceProfile"},
            },
            "ClientInstanceProfile": {
                "Description": "instance profile for Consul clients",
                "Value": {"Ref": "ClientInstanceProfile"},
            },
        },
    }


def dumps(document: dict[str, object]) -> str:
    return json.dumps(document, indent=2) + "\n"
