"""roles/aws_image against moto: `create` makes the image of an instance with the release's tags on the image
and its snapshot, `find` finds it by release, `prune` keeps the newest available images of the app and the
protected ones and deregisters the others with their snapshots, leaving other apps' and other projects'
images alone. Every call is checked against docs/iam/ops-box-images-policy.json by test_iam_policy.py.

moto makes an image available at once; the lab's images (pending until the container is committed) are
tests/lab/test_lab_images.py's, bake.yml on hosts tests/fleet/test_50_bake.py's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ec2_fleet_dev.moto_aws import CANONICAL, Run

APP = "orders-api"
PLAYBOOK = """\
- name: The images of the app
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/ec2_fleet.fleet.aws:
      region: us-east-1
      endpoint_url: "{{ lookup('ansible.builtin.env', 'AWS_URL') }}"
  tasks:
    - name: Run the role's task file
      ansible.builtin.include_role:
        name: ec2_fleet.fleet.aws_image
        tasks_from: "{{ image_tasks }}"

    - name: Keep what it published
      ansible.builtin.copy:
        content: "{{ {'outputs': aws_image_outputs | default(None), 'found': aws_image_found | default(None)}
                     | to_json }}"
        dest: "{{ image_out }}"
        mode: '0600'
"""


@pytest.fixture(scope="module")
def builder(client: Callable) -> str:
    """An instance of the project, as bake.yml's builder."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    ami = sorted(ec2.describe_images(Owners=[CANONICAL])["Images"], key=lambda i: i["Name"])[-1]["ImageId"]
    tags = [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "Role", "Value": "image-builder"}]
    started = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])  # fmt: skip
    return started["Instances"][0]["InstanceId"]


def image_play(run: Callable[..., Run], tmp_path: Path, tasks: str, **inputs: object) -> tuple[Run, dict]:
    playbook, out = tmp_path / f"{tasks}.yml", tmp_path / f"{tasks}.json"
    playbook.write_text(PLAYBOOK)
    variables = {"image_tasks": tasks, "image_out": str(out), "aws_image_tags": {"Project": "ec2-fleet"},
                 "aws_image_app": APP, **inputs}
    result = run(str(playbook), variables)
    return result, (json.loads(out.read_text()) if out.exists() else {})


def ours(client: Callable) -> dict[str, dict]:
    """Release -> image of the app (tags as a dict), with its snapshot's tags."""
    ec2 = client("ec2")
    found = {}
    for image in ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:App", "Values": [APP]}])["Images"]:
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        if tags.get("Project") != "ec2-fleet":
            continue
        snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        snap_tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [snapshot]}])["Tags"]
        found[tags["Release"]] = {**image, "tags": tags, "snapshot": snapshot,
                                  "snapshot_tags": {t["Key"]: t["Value"] for t in snap_tags}}
    return found


def test_create_find_and_prune_the_images_of_the_app(client: Callable, run: Callable[..., Run], builder: str,
                                                     tmp_path: Path) -> None:
    ec2 = client("ec2")
    made = {}
    for release in ("1.0.0", "1.1.0", "2.0.0", "2.1.0"):
        result, published = image_play(
            run, tmp_path, "create", aws_image_instance_id=builder, aws_image_release=release,
            aws_image_name_prefix=f"ec2-fleet-{APP}-{release}", aws_image_source="ab" * 32,
            aws_image_runtime="python", aws_image_base_ami="ami-0123456789abcdef0",
        )  # fmt: skip
        assert result.rc == 0, result.tail()
        made[release] = published["outputs"]["image_id"]
    images = ours(client)
    assert {r: i["ImageId"] for r, i in images.items()} == made
    newest = images["2.1.0"]
    expected = {"Project": "ec2-fleet", "App": APP, "Release": "2.1.0", "Source": "ab" * 32, "Runtime": "python",
                "BaseImage": "ami-0123456789abcdef0", "Name": f"{APP}-2.1.0"}  # no Environment: every one uses it
    assert newest["tags"] == expected
    assert newest["snapshot_tags"] == expected  # the snapshot is found and pruned by the same tags
    assert newest["State"] == "available" and newest["Name"].startswith(f"ec2-fleet-{APP}-2.1.0-")

    # find: the release's image, or none.
    result, published = image_play(run, tmp_path, "find", aws_image_release="1.1.0")
    assert result.rc == 0, result.tail()
    assert published["found"]["image_id"] == made["1.1.0"], published
    result, published = image_play(run, tmp_path, "find", aws_image_release="9.9.9")
    assert result.rc == 0, result.tail()
    assert not published["found"] or not published["found"].get("image_id"), published

    # Someone else's images of the same app name: another project's, and one with no Project tag.
    others = []
    app = {"Key": "App", "Value": APP}
    for tags in ([{"Key": "Project", "Value": "payments"}, app], [app]):
        others.append(ec2.create_image(InstanceId=builder, Name=f"foreign-{len(others)}",
                                       TagSpecifications=[{"ResourceType": "image", "Tags": tags}])["ImageId"])

    # prune: the newest 2 and the protected 1.0.0 (a launch template's) kept; 1.1.0 and its snapshot gone.
    result, _ = image_play(run, tmp_path, "prune", aws_image_keep=2, aws_image_protected=[made["1.0.0"]])
    assert result.rc == 0, result.tail()
    left = ours(client)
    assert sorted(left) == ["1.0.0", "2.0.0", "2.1.0"]
    snapshots = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert images["1.1.0"]["snapshot"] not in snapshots
    assert {i["snapshot"] for i in left.values()} <= snapshots
    assert {i["ImageId"] for i in ec2.describe_images(ImageIds=others)["Images"]} == set(others)

    # A second prune changes nothing.
    result, _ = image_play(run, tmp_path, "prune", aws_image_keep=2, aws_image_protected=[made["1.0.0"]])
    assert result.rc == 0 and "changed=0" in result.output, result.tail()
