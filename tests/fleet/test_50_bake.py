"""bake.yml in the lab: the image of the release the fleet runs, baked on a builder instance the playbook
launches in the environment's private subnet and reaches through the bastion, imaged (the lab commits the
builder's container: devkit lab/images.py) and terminated (the `baked` fixture, conftest.py). The image is then
used as an Auto Scaling group would: an instance launched from it, with no key pair and no playbook run, has the
release current and the app's units but not started, no secret and no key of the builder; writing the
environment's env file and starting the app is all it takes to serve. Another instance does that on its own, as an
Auto Scaling group's will: its user data runs the image's ec2-fleet-boot, which reads the settings from SSM through
an interface endpoint (a group of the image, made by provision.yml in asg mode: asg_of_image, used by
test_51_asg_scaling.py and test_52_asg_deploy.py).
A second run reuses the image; bad inputs are refused before anything is launched.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
from test_30_rolling import aws, target_group_arn

from ec2_fleet_dev.labs import LAB_TAGS, wait_for
from ec2_fleet_dev.plays import run_playbook

pytestmark = pytest.mark.fleet

APP = "orders-api"
ENV_FILE = f"/etc/ec2-fleet/supervisor/{APP}.env"
BUILDER_ROLE = "image-builder"


def sh(container: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", container, "sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def container(fleet, instance_id: str) -> str:
    return f"{fleet.env['EC2_FLEET_LAB_NAME']}-{instance_id}"


def running(fleet, role: str) -> list[dict]:
    found = aws(fleet, "ec2").describe_instances(Filters=[
        {"Name": "tag:Role", "Values": [role]}, {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])["Reservations"]  # fmt: skip
    return [i for r in found for i in r["Instances"]]


def images(fleet) -> list[dict]:
    return aws(fleet, "ec2").describe_images(Owners=["self"], Filters=[{"Name": "tag:App", "Values": [APP]}])["Images"]


def unquote(value: str) -> str:
    """A value of the env file (KEY="..." with \\, \" and \n escaped) as the app reads it."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def boot_settings(fleet, path: str, release: str | None) -> tuple[dict[str, str], str]:
    """The environment's app settings (a web host's env file) and release (None: none, the image's runs) in SSM
    under `path`, as provision.yml will write them; with the shell lines that write the cache's CA the env file
    names, as cloud-init's ca_certs would (ElastiCache's is public on AWS)."""
    ssm = aws(fleet, "ssm")
    web_name = container(fleet, running(fleet, "web")[0]["InstanceId"])
    web_env = sh(web_name, f"cat {ENV_FILE}").stdout
    settings = dict(line.split("=", 1) for line in web_env.splitlines() if "=" in line and not line.startswith("#"))
    for key, value in settings.items():
        ssm.put_parameter(Name=f"{path}/app-env/{key}", Value=unquote(value), Type="SecureString", Overwrite=True)
    if release is not None:
        ssm.put_parameter(Name=f"{path}/release", Value=release, Type="String", Overwrite=True)
    ca = ""
    if "REDIS_CA_FILE" in settings:
        ca_path = settings["REDIS_CA_FILE"].strip('"')
        pem = sh(web_name, f"cat {ca_path}").stdout
        ca = f"install -d {ca_path.rsplit('/', 1)[0]}\ncat > {ca_path} <<'CA'\n{pem}CA\n"
    return settings, ca


def drop_settings(fleet, path: str, settings: dict[str, str], release: bool = True) -> None:
    ssm = aws(fleet, "ssm")
    for parameter in [*(f"{path}/app-env/{key}" for key in settings), *([f"{path}/release"] if release else [])]:
        ssm.delete_parameter(Name=parameter)


def test_bake_makes_an_image_tagged_with_the_release_and_its_source_and_terminates_the_builder(baked):
    fleet, release, run, image = baked
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    artifact = next((fleet.state_dir / "artifacts" / APP / release).glob(f"{APP}-{release}-*.tar.gz"))
    assert tags["Source"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert (tags["Project"], tags["App"], tags["Release"], tags["Runtime"]) == ("ec2-fleet", APP, release, "python")
    assert tags["BaseImage"].startswith("ami-") and tags["BaseImage"] != image["ImageId"]
    assert "Environment" not in tags  # an image serves every environment
    assert image["State"] == "available"
    assert f"{APP} {release}: image {image['ImageId']}" in run.output and "baked now" in run.output
    # The builder is gone, and so is its container.
    assert running(fleet, BUILDER_ROLE) == []
    lab = fleet.env["EC2_FLEET_LAB_NAME"]
    names = subprocess.run(["podman", "ps", "-a", "--filter", f"label=ec2-fleet-lab={lab}", "--format",
                            "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    builders = [i["InstanceId"] for i in aws(fleet, "ec2").describe_instances(
        Filters=[{"Name": "tag:Role", "Values": [BUILDER_ROLE]}])["Reservations"][0]["Instances"]]  # fmt: skip
    assert not any(b in n for b in builders for n in names), names


def test_an_instance_from_the_image_holds_the_release_no_secret_and_serves_once_given_its_env_file(baked):
    fleet, release, _, image = baked
    ec2 = aws(fleet, "ec2")
    web = running(fleet, "web")[0]
    launched = ec2.run_instances(
        ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=web["SubnetId"],
        SecurityGroupIds=[g["GroupId"] for g in web["SecurityGroups"]],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "bake-check"}]}],
    )["Instances"][0]  # fmt: skip
    new = launched["InstanceId"]
    name = container(fleet, new)
    try:
        wait_for(f"{name} booted", lambda: sh(name, "systemctl is-system-running --wait", timeout=120).stdout.strip()
                 in ("running", "degraded"), 180)  # fmt: skip
        # The release, current and installed, with its units; the app neither enabled nor started.
        assert sh(name, f"readlink /srv/{APP}/current").stdout.strip() == f"releases/{release}"
        assert sh(name, f"test -e /srv/{APP}/releases/{release}/.installed").returncode == 0
        assert sh(name, f"systemctl is-enabled {APP}.target").stdout.strip() != "enabled"
        assert sh(name, f"systemctl is-active {APP}.target").stdout.strip() != "active"
        assert '"release": "' + release + '"' in sh(name, "cat /etc/ec2-fleet/image.json").stdout
        assert "--ssm-path" in sh(name, "ec2-fleet-boot --help").stdout  # the instance's own boot is there
        # Nothing of an environment or of the builder: no database or cache URL, no authorized key (this
        # instance has no key pair), its own machine id and SSH host keys.
        env = sh(name, f"cat {ENV_FILE}").stdout
        assert "DATABASE_URL" not in env and "REDIS_URL" not in env, env
        assert sh(name, "ls /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys").returncode != 0
        assert len(sh(name, "cat /etc/machine-id").stdout.strip()) == 32
        web_name = container(fleet, web["InstanceId"])
        fingerprint = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
        assert sh(name, fingerprint).stdout.split()[1] != sh(web_name, fingerprint).stdout.split()[1]
        # No secret of the environment anywhere on the image's disk.
        web_env = sh(web_name, f"cat {ENV_FILE}").stdout
        urls = dict(line.split("=", 1) for line in web_env.splitlines() if "=" in line and not line.startswith("#"))
        secrets = [p for p in (urlparse(urls["DATABASE_URL"].strip('"')).password,
                               urlparse(urls["REDIS_URL"].strip('"')).password) if p]  # fmt: skip
        assert secrets, "the fleet's env file has no password to look for"
        image_name = f"localhost/{fleet.env['EC2_FLEET_LAB_NAME']}-ami:{image['ImageId']}"
        grep = subprocess.run(
            ["podman", "run", "--rm", "--network", "none", image_name, "grep", "-rIl",
             *[a for s in secrets for a in ("-e", s)], "/etc", "/srv", "/home", "/root", "/var", "/opt", "/usr/local"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert grep.returncode == 1 and grep.stdout == "", grep.stdout + grep.stderr
        # The env file the boot writes is all it takes (with, in the lab, the cache's CA it names, which the
        # boot installs as cloud-init's ca_certs would): the app starts and answers ready, with the release.
        copies = {ENV_FILE: web_env}
        if "REDIS_CA_FILE" in urls:
            ca_path = urls["REDIS_CA_FILE"].strip('"')
            copies[ca_path] = sh(web_name, f"cat {ca_path}").stdout
        for path, content in copies.items():
            copy = subprocess.run(["podman", "exec", "-i", name, "sh", "-c", f"cat > {path}"], input=content,
                                  text=True, capture_output=True, timeout=30)  # fmt: skip
            assert copy.returncode == 0, copy.stderr
        start = sh(name, f"systemctl start {APP}.target && fleetctl reload {APP} --path=/ready --timeout=60", 180)
        assert start.returncode == 0, start.stdout + start.stderr + sh(name, f"journalctl -n 40 -u '{APP}@*'").stdout
        version = sh(name, "python3 -c \"import urllib.request; print(urllib.request.urlopen("
                           "'http://127.0.0.1:8000/version', timeout=5).read().decode())\"").stdout
        assert f'"version": "{release}"' in version or f'"version":"{release}"' in version, version
    finally:
        ec2.terminate_instances(InstanceIds=[new])


def test_an_instance_from_the_image_boots_on_its_own_from_ssm_through_an_ssm_endpoint(baked):
    """As an Auto Scaling group's instance will: user data runs the image's ec2-fleet-boot, which reads the
    instance profile's credentials from IMDSv2 and the environment's app settings and release from SSM (through
    an interface endpoint: the private subnet has no other way out), writes the env file, starts the app and
    waits for it to be ready. No playbook run, no SSH."""
    fleet, release, _, image = baked
    ec2 = aws(fleet, "ec2")
    web = running(fleet, "web")[0]
    web_name = container(fleet, web["InstanceId"])
    path = "/ec2-fleet/lab-image-boot"  # the environment's parameters, as provision.yml will write them
    settings, ca = boot_settings(fleet, path, release)
    user_data = f"#!/bin/sh\n{ca}exec /usr/local/lib/ec2-fleet/ec2-fleet-boot --app {APP} --ssm-path {path}\n"
    ec2.create_vpc_endpoint(
        VpcId=web["VpcId"], ServiceName="com.amazonaws.us-east-1.ssm", VpcEndpointType="Interface",
        SubnetIds=[web["SubnetId"]], PrivateDnsEnabled=True,
    )  # fmt: skip
    new = ec2.run_instances(
        ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=web["SubnetId"],
        SecurityGroupIds=[g["GroupId"] for g in web["SecurityGroups"]], UserData=user_data,
        IamInstanceProfile={"Arn": web["IamInstanceProfile"]["Arn"]},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "boot-check"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    name = container(fleet, new)
    started = time.monotonic()
    try:
        def version() -> str | None:
            out = sh(name, "python3 -c \"import urllib.request; print(urllib.request.urlopen("
                           "'http://127.0.0.1:8000/version', timeout=3).read().decode())\"", timeout=20)
            return out.stdout if out.returncode == 0 else None

        def booted() -> str | None:  # the boot's last word (the app answers before its readiness gate is done)
            log = sh(name, "cat /var/log/cloud-init-output.log").stdout
            return log if "ready in" in log or "FAILED" in log else None

        try:
            log = wait_for(f"{name}'s ec2-fleet-boot done", booted, 300)
        except AssertionError as timed_out:  # what the boot got to, and why: the lab's logs of the instance
            raise AssertionError(f"{timed_out}\n--- cloud-init-output.log\n"
                                 + sh(name, "tail -n 30 /var/log/cloud-init-output.log").stdout
                                 + "--- journal\n" + sh(name, "journalctl -n 40 --no-pager").stdout) from None
        seconds = time.monotonic() - started
        assert f"release {release}" in log and "ready in" in log, log
        answer = version()
        assert answer and (f'"version": "{release}"' in answer or f'"version":"{release}"' in answer), answer
        assert sh(name, f"systemctl is-enabled {APP}.target").stdout.strip() == "enabled"  # and after a reboot
        env = sh(name, f"stat -c '%a %U %G' {ENV_FILE} && cat {ENV_FILE}").stdout
        assert env.splitlines()[0] == sh(web_name, f"stat -c '%a %U %G' {ENV_FILE}").stdout.strip(), env
        assert "DATABASE_URL=" in env and "REDIS_URL=" in env
        print(f"\nFIGURE image_boot_to_ready_s={seconds:.1f} (run_instances of the image to ec2-fleet-boot's "
              "'ready': container start, boot, its IMDS and SSM calls, the app's start and readiness gate)")
    finally:
        ec2.terminate_instances(InstanceIds=[new])
        # The endpoint stays, as the environment's: provision.yml in asg mode (asg_of_image) adopts it. A deleted
        # endpoint is still listed (state deleted, as on AWS), and amazon.aws's ec2_vpc_endpoint takes it for the
        # service's existing one and makes none: the group's instances would then time out on SSM.
        drop_settings(fleet, path, settings)


ASG_PLAYBOOK = """\
- name: The lab's Auto Scaling group, deleted
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/ec2_fleet.fleet.aws: "{{ aws_connection_options }}"
  roles:
    - role: ec2_fleet.fleet.aws_asg
      vars:
        aws_asg_state: absent
"""


@contextmanager
def asg_of_image(fleet, release: str, image: dict, tmp_path, pin_release: bool = True,
                 **inputs: object) -> Iterator[dict]:
    """A group of the baked image, made as an operator would: provision.yml with fleet_capacity asg (its part only:
    --tags aws_asg, the lab's fixed fleet left as it is) in the two private subnets with the fleet's target group.
    provision.yml writes the app's settings in SSM, makes the interface endpoints its instances need (ssm,
    autoscaling; the lab has no NAT gateway) and the group of release's image (fleet_app_version), whose instances
    boot on their own (ec2-fleet-boot) and complete the launch hook once ready; the lab runs it as AWS does (devkit
    lab/autoscaling.py). Yields the group's name, its target group, provision.yml's run and clients; removes it
    all after. The group's Role tag is asg-web (not the fixed fleet's role_web). pin_release: the release in SSM too,
    which an instance's image must have (False: none; the launch template's image is the release, as
    rolling_update.yml's instance refresh needs)."""
    ec2 = aws(fleet, "ec2")
    name = f"ec2-fleet-{fleet.env['EC2_FLEET_LAB_NAME']}-asg"
    ssm = aws(fleet, "ssm")
    path = "/ec2-fleet/lab"  # the lab environment's (aws_host_iam_ssm_parameter_path)
    if pin_release:
        ssm.put_parameter(Name=f"{path}/release", Value=release, Type="String", Overwrite=True)
    variables = {"fleet_capacity": "asg", "fleet_asg_name": name, "fleet_app_version": release,
                 "aws_asg_role": "asg-web", "aws_asg_min_size": 1, "aws_asg_max_size": 2,
                 "aws_asg_desired_capacity": 1, "aws_asg_wait_timeout": 300, **inputs}  # fmt: skip
    try:
        made = fleet.play("provision", "--tags", "aws_asg", extra=variables)
        assert made.rc == 0, made.tail()
        (group,) = aws(fleet, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"]  # fmt: skip
        assert group["Instances"] and image["ImageId"] in made.output, made.tail()
        yield {"name": name, "tg": target_group_arn(fleet), "run": made, "ec2": ec2, "elbv2": aws(fleet, "elbv2"),
               "autoscaling": aws(fleet, "autoscaling")}  # fmt: skip
    finally:
        playbook = tmp_path / "asg-absent.yml"
        playbook.write_text(ASG_PLAYBOOK)
        run_playbook(playbook, "inventories/lab", {"aws_asg_name": name}, env=fleet.env, timeout=600)
        # The interface endpoints stay, as the environment's (see the test above): the next group's provision.yml
        # finds them.
        settings = ssm.get_parameters_by_path(Path=f"{path}/app-env")["Parameters"]
        for parameter in [*(p["Name"] for p in settings), *([f"{path}/release"] if pin_release else [])]:
            ssm.delete_parameter(Name=parameter)


def members(group: dict) -> dict[str, str]:
    """The group's instances -> their lifecycle state."""
    found = group["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group["name"]])
    return {i["InstanceId"]: i["LifecycleState"] for i in found["AutoScalingGroups"][0]["Instances"]}


def target_health(group: dict) -> dict[str, str]:
    found = group["elbv2"].describe_target_health(TargetGroupArn=group["tg"])["TargetHealthDescriptions"]
    return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in found}


def test_a_second_bake_of_the_release_reuses_its_image(baked):
    fleet, release, _, image = baked
    run = fleet.play("bake", extra={"app_version": release})
    assert run.rc == 0, run.tail()
    assert f"image {image['ImageId']}" in run.output and "reused" in run.output
    assert run.recap()["localhost"]["changed"] == 0, run.recap()
    assert [i["ImageId"] for i in images(fleet) if {"Key": "Release", "Value": release} in i["Tags"]] == [
        image["ImageId"]
    ]


@pytest.mark.parametrize(
    ("extra", "named"),
    [({"bake_keep_images": 0}, "bake_keep_images at least 1"), ({"app_version": "1.0/x"}, "app_version a release")],
)
def test_bad_bake_inputs_are_refused_before_a_builder_is_launched(baked, extra, named):
    fleet = baked[0]
    run = fleet.play("bake", extra=extra)
    assert run.rc != 0 and named in run.output, run.tail()
    assert running(fleet, BUILDER_ROLE) == []
