"""The instances provision.yml makes: hardened and spread, one bastion, a least-privilege host role,
IMDSv2 and encrypted volumes; the lab inventory lists them and only them.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from provision_helpers import EC2_TRUST, PREFIX, TAGS, _live_instances, _network, _our_vpc, _plain, _tag_filters

from ec2_fleet_dev.moto_aws import Run

pytestmark = pytest.mark.usefixtures("lab")


def test_instances_are_hardened_and_spread(client: Callable, lab: dict) -> None:
    ec2 = client("ec2")
    net = _network(client)
    instances = _live_instances(ec2, _tag_filters(Role="web"))
    assert len(instances) == 2
    private = {s["SubnetId"] for s in net["tiers"]["private"]}
    assert {i["SubnetId"] for i in instances} == private, "one instance per private subnet"
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags == {**TAGS, "Role": "web", "Name": f"{PREFIX}-web"}
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert inst["MetadataOptions"]["HttpEndpoint"] == "enabled"
        assert inst["InstanceType"] == "t3.small"
        assert inst["ImageId"] == lab["ami"]
        assert inst["KeyName"] == PREFIX
        assert inst["IamInstanceProfile"]["Arn"] == lab["profile"]
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [net["groups"]["hosts"]["GroupId"]]
        assert "PublicIpAddress" not in inst
        root = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
        assert len(root) == 1
        volume = ec2.describe_volumes(VolumeIds=[root[0]["Ebs"]["VolumeId"]])["Volumes"][0]
        assert volume["VolumeType"] == "gp3"
        assert volume["Encrypted"] is True
        assert volume["Size"] == 20
    keys = ec2.describe_key_pairs(KeyNames=[PREFIX])["KeyPairs"]
    assert {t["Key"]: t["Value"] for t in keys[0].get("Tags", [])}.items() >= TAGS.items()


def test_one_bastion_in_a_public_subnet(client: Callable, lab: dict) -> None:
    ec2 = client("ec2")
    net = _network(client)
    bastions = _live_instances(ec2, _tag_filters(Role="bastion"))
    assert len(bastions) == 1, "exactly one bastion, also after the second run"
    bastion = bastions[0]
    assert {t["Key"]: t["Value"] for t in bastion["Tags"]} == {**TAGS, "Role": "bastion", "Name": f"{PREFIX}-bastion"}
    assert bastion["SubnetId"] == net["tiers"]["public"][0]["SubnetId"]
    assert [g["GroupId"] for g in bastion["SecurityGroups"]] == [net["groups"]["bastion"]["GroupId"]]
    assert bastion["PublicIpAddress"]  # from the public subnet's MapPublicIpOnLaunch
    assert bastion["KeyName"] == PREFIX
    assert "IamInstanceProfile" not in bastion  # it needs no AWS permission
    assert bastion["MetadataOptions"]["HttpTokens"] == "required"


def test_hosts_role_is_least_privilege(client: Callable, lab: dict) -> None:
    """The hosts' role: Session Manager's managed policy, read of this environment's parameters, KMS
    decryption only through SSM, and the CloudWatch agent's writes (its streams in the environment's log
    group, its metrics in its namespace); its instance profile is the one every host runs with."""
    iam = client("iam")
    role = iam.get_role(RoleName=f"{PREFIX}-host")["Role"]
    assert role["AssumeRolePolicyDocument"] == EC2_TRUST
    assert {t["Key"]: t["Value"] for t in role.get("Tags", [])}.items() >= TAGS.items()
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["read-environment-parameters"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="read-environment-parameters")
    statements = {s["Sid"]: s for s in document["PolicyDocument"]["Statement"]}
    assert set(statements) == {"ReadEnvironmentParameters", "DecryptThroughSsmOnly", "ShipLogsToTheEnvironmentLogGroup",
                               "PutMetricsInTheAgentNamespace", "ReadInstanceTags"}  # fmt: skip
    logs = statements["ShipLogsToTheEnvironmentLogGroup"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert logs["Resource"] == ["arn:aws:logs:*:*:log-group:/ec2-fleet/lab/journal",
                                "arn:aws:logs:*:*:log-group:/ec2-fleet/lab/journal:*"]  # fmt: skip
    metrics = statements["PutMetricsInTheAgentNamespace"]
    assert metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "CWAgent"}}
    assert statements["ReadInstanceTags"]["Action"] == "ec2:DescribeTags"
    read = statements["ReadEnvironmentParameters"]
    assert sorted(read["Action"]) == ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
    assert read["Resource"] == ["arn:aws:ssm:*:*:parameter/ec2-fleet/lab", "arn:aws:ssm:*:*:parameter/ec2-fleet/lab/*"]
    decrypt = statements["DecryptThroughSsmOnly"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}
    profile = iam.get_instance_profile(InstanceProfileName=f"{PREFIX}-host")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [role["RoleName"]]
    assert len(iam.list_instance_profiles()["InstanceProfiles"]) == 1  # the second run made no other


def test_every_instance_requires_imdsv2_and_encrypts_every_volume(client: Callable) -> None:
    """Every instance in the VPC, whatever its tags: IMDSv2 only, one hop, every attached volume encrypted."""
    ec2 = client("ec2")
    vpc = _our_vpc(ec2)
    instances = _live_instances(ec2, [{"Name": "vpc-id", "Values": [vpc]}])
    assert len(instances) == 3  # two hosts and the bastion
    for inst in instances:
        # HttpTokens=required: a metadata request without a session token is refused (no IMDSv1).
        options = inst["MetadataOptions"]
        assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 1), inst["InstanceId"]
        attached = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}])
        volumes = attached["Volumes"]
        assert {v["VolumeId"] for v in volumes} == {m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]}
        assert volumes, inst["InstanceId"]
        unencrypted = [v["VolumeId"] for v in volumes if not v["Encrypted"]]
        assert unencrypted == [], f"{inst['InstanceId']} has unencrypted volumes {unencrypted}"


def test_inventory_lists_only_this_environment(client: Callable, run: Callable[..., Run], lab: dict) -> None:
    ours = {i["InstanceId"]: i for i in _live_instances(client("ec2"), _tag_filters(Role="web"))}
    graph = run("", None, "--graph", command="ansible-inventory")
    assert graph.rc == 0, graph.tail()
    listing = run("", None, "--list", command="ansible-inventory")
    assert listing.rc == 0, listing.tail()
    data, _ = json.JSONDecoder().raw_decode(listing.output[listing.output.index("{") :])
    hostvars = data["_meta"]["hostvars"]
    bastions = set(data["role_bastion"]["hosts"])
    hosts = {name: _plain(hv) for name, hv in hostvars.items() if name != "localhost" and name not in bastions}
    # The bastion: its own group, reached at its private IP in the lab (its public IP on AWS: staging's compose).
    (bastion,) = _live_instances(client("ec2"), _tag_filters(Role="bastion"))
    assert bastions == {f"{PREFIX}-bastion-{bastion['InstanceId']}"}
    assert _plain(hostvars[f"{PREFIX}-bastion-{bastion['InstanceId']}"])["ansible_host"] == bastion["PrivateIpAddress"]
    assert {hv["instance_id"] for hv in hosts.values()} == set(ours)
    for name, hv in hosts.items():
        inst = ours[hv["instance_id"]]
        assert name == f"{PREFIX}-web-{inst['InstanceId']}"
        assert hv["ansible_host"] == inst["PrivateIpAddress"]
        assert name in graph.output
    names = set(hosts)
    assert set(data["role_web"]["hosts"]) == names
    assert set(data["env_lab"]["hosts"]) == names | bastions
    zones = {f"az_{i['Placement']['AvailabilityZone'].replace('-', '_')}" for i in ours.values()}
    assert len(zones) == 2
    for zone in zones:
        assert set(data[zone]["hosts"]) <= names | bastions and data[zone]["hosts"]
    # The staging instance and the untagged one are not in the lab's inventory.
    for foreign in (lab["foreign"]["staging"], lab["foreign"]["instance"]):
        assert foreign not in graph.output
    assert "env_staging" not in data
