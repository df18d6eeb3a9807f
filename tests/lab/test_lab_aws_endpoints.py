"""AWS's public endpoints as a private instance sees them (devkit lab/aws_endpoints.py), called by the real boot
agent (roles/boot's ec2-fleet-boot) with its instance profile's credentials from IMDS:

- with no NAT gateway and no VPC endpoint, https://ssm.REGION.amazonaws.com resolves and times out, as on AWS;
- an interface endpoint for SSM with private DNS opens SSM, and only SSM;
- a default route to a NAT gateway opens the rest;
- an instance without an instance profile gets no credentials from IMDS.

One lab (module fixtures of conftest.py); every wait is bounded."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from test_lab import container_of

from ec2_fleet_dev.labs import LAB_TAGS, Lab, wait_for
from ec2_fleet_dev.plays import ROOT

AGENT = ROOT / "roles" / "boot" / "files" / "usr" / "local" / "lib" / "ec2-fleet" / "ec2-fleet-boot"

# Run on the instance: `probe SERVICE` (an unsigned HTTPS request, 4 s to answer), `parameter NAME` and
# `autoscaling` (the agent's own calls, signed with the credentials it reads from IMDS), `credentials`.
ON_HOST = r"""
import importlib.machinery, importlib.util, json, socket, ssl, sys, urllib.error, urllib.request
loader = importlib.machinery.SourceFileLoader("boot", "/tmp/ec2-fleet-boot")
boot = importlib.util.module_from_spec(importlib.util.spec_from_loader("boot", loader))
sys.modules["boot"] = boot  # for its dataclasses
loader.exec_module(boot)
what = sys.argv[1]
if what == "probe":
    try:
        urllib.request.urlopen(f"https://{sys.argv[2]}.us-east-1.amazonaws.com/", timeout=4)
        print("answered")
    except urllib.error.HTTPError:
        print("answered")  # an unsigned request: an error, but from the service
    except (TimeoutError, socket.timeout):
        print("timed out")
    except urllib.error.URLError as e:
        print("timed out" if isinstance(e.reason, (TimeoutError, socket.timeout)) else f"error: {e.reason}")
elif what == "issuer":
    with socket.create_connection(("ssm.us-east-1.amazonaws.com", 443), timeout=4) as raw:
        with ssl.create_default_context().wrap_socket(raw, server_hostname="ssm.us-east-1.amazonaws.com") as tls:
            print(dict(x[0] for x in tls.getpeercert()["issuer"])["commonName"])
elif what == "credentials":
    imds = boot.Imds()
    try:
        print(json.dumps({"role": imds.get("meta-data/iam/security-credentials/").strip(),
                          "key": imds.credentials().access_key}))
    except boot.BootError as e:
        print(json.dumps({"error": str(e)}))
else:
    aws = boot.Aws("us-east-1", boot.Imds().credentials())
    if what == "parameter":
        print(aws.parameter(sys.argv[2]))
    else:
        aws.autoscaling("DescribeAutoScalingGroups", {})
        print("described")
"""


def on_host(container: str, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run(["podman", "exec", container, "python3", "-c", ON_HOST, *args], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def booted(container: str) -> bool:
    proc = subprocess.run(["podman", "exec", container, "systemctl", "is-system-running", "--wait"],
                          capture_output=True, text=True, timeout=90)  # fmt: skip
    return proc.stdout.strip() in ("running", "degraded")


def test_a_private_instance_reaches_aws_only_through_an_endpoint_or_a_nat_gateway(lab: Lab, fleet: dict) -> None:
    ec2, iam = lab.client("ec2"), lab.client("iam")
    name = f"{lab.name}-boot-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }))  # fmt: skip
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    ami = lab.client("ssm").get_parameter(Name="/ec2-fleet/lab/ubuntu-ami-id")["Parameter"]["Value"]
    instance = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=fleet["subnets"][0],
        IamInstanceProfile={"Name": name},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "web"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    secret = uuid.uuid4().hex
    lab.client("ssm").put_parameter(Name=f"/{name}/app-env/SECRET", Value=secret, Type="SecureString")
    cname = container_of(lab, instance)
    wait_for(f"{cname} booted", lambda: lab.containers().get(cname) == "running" and booted(cname), 120)
    subprocess.run(["podman", "cp", str(AGENT), f"{cname}:/tmp/ec2-fleet-boot"], check=True, timeout=30)

    # The profile's role and credentials of the instance's own, from IMDSv2; none for an instance without one.
    credentials = json.loads(on_host(cname, "credentials"))
    assert credentials["role"] == name and credentials["key"].startswith("ASIA"), credentials
    other = container_of(lab, fleet["instances"][0][0])
    subprocess.run(["podman", "cp", str(AGENT), f"{other}:/tmp/ec2-fleet-boot"], check=True, timeout=30)
    assert json.loads(on_host(other, "credentials")) == {
        "error": "IMDS meta-data/iam/security-credentials/: HTTP 404: Not Found Not Found"}

    # A private subnet with no way out: the name resolves, the connection gets no answer.
    assert on_host(cname, "probe", "ssm") == "timed out"

    # An interface endpoint for SSM (private DNS): SSM answers, with a certificate the instance trusts from its
    # first boot; Auto Scaling still does not.
    ec2.create_vpc_endpoint(VpcId=fleet["vpc"], ServiceName="com.amazonaws.us-east-1.ssm", VpcEndpointType="Interface",
                            SubnetIds=fleet["subnets"], PrivateDnsEnabled=True)  # fmt: skip
    assert on_host(cname, "probe", "ssm") == "answered"
    assert on_host(cname, "issuer") == "ec2-fleet lab AWS root"
    assert on_host(cname, "parameter", f"/{name}/app-env/SECRET") == secret
    assert on_host(cname, "probe", "autoscaling") == "timed out"

    # A NAT gateway on the private subnets' default route: every service answers.
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=fleet["subnets"][1], AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    main: Any = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [fleet["vpc"]]},
                                                   {"Name": "association.main", "Values": ["true"]}])  # fmt: skip
    ec2.create_route(RouteTableId=main["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0",
                     NatGatewayId=nat)  # fmt: skip
    try:
        assert on_host(cname, "probe", "autoscaling") == "answered"
        assert on_host(cname, "autoscaling") == "described"
    finally:
        ec2.delete_route(RouteTableId=main["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
        ec2.terminate_instances(InstanceIds=[instance])
