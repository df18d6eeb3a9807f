"""docs/first-run-on-aws.md, run in the lab: every ansible-playbook command the guide gives is one
this session ran and saw succeed, with `staging` read as `lab`.

The guide's dry run, provision, site and verify are run as written by the session's fixtures and
test_10; its rolling update, rollback and teardown run here, in the guide's order, after every
other fleet test (teardown last of all: the lab's account is empty again afterwards).
"""

from __future__ import annotations

import re
import shlex

import boto3
import pytest

from ec2_fleet_dev.plays import ROOT

pytestmark = pytest.mark.fleet

GUIDE = ROOT / "docs" / "first-run-on-aws.md"
Command = tuple[str, frozenset[str], frozenset[tuple[str, str]]]


def guide_commands() -> list[Command]:
    """The guide's ansible-playbook commands, in order, as (playbook, options, extra vars), for the lab."""
    blocks = re.findall(r"^```sh\n(.*?)^```", GUIDE.read_text(), flags=re.M | re.S)
    commands: list[Command] = []
    for line in (line for block in blocks for line in block.splitlines()):
        line = line.split(" #", 1)[0].strip()
        if not line.startswith("ansible-playbook "):
            continue
        words = shlex.split(line.replace("staging", "lab"))[1:]
        playbook, options, extra = "", set(), set()
        while words:
            word = words.pop(0)
            if word == "-i":
                assert words.pop(0) == "inventories/lab", line
            elif word == "-e":
                key, value = words.pop(0).split("=", 1)
                extra.add((key, value))
            elif word.startswith("playbooks/"):
                playbook = word.removeprefix("playbooks/").removesuffix(".yml")
            else:
                options.add(word)
        assert playbook, line
        commands.append((playbook, frozenset(options), frozenset(extra)))
    return commands


def test_the_guide_gives_the_whole_first_run():
    playbooks = [c[0] for c in guide_commands()]
    expected = ["provision", "provision", "site", "verify", "rolling_update", "rollback", "teardown"]
    assert playbooks == expected, playbooks
    assert ("--check" in guide_commands()[0][1]) and ("--diff" in guide_commands()[0][1])


def test_every_command_of_the_guide_ran_in_the_lab(converged):
    fleet = converged
    for command in guide_commands():
        if command in fleet.history:
            continue
        playbook, options, extra = command
        result = fleet.play(playbook, *sorted(options), extra=dict(extra))
        assert result.rc == 0, f"the guide's `{playbook}` failed in the lab:\n{result.tail()}"
    missing = [c for c in guide_commands() if c not in fleet.history]
    assert not missing, f"commands of the guide that did not run in the lab: {missing}"
    # The guide's last step leaves nothing of the environment behind.
    ec2 = boto3.client("ec2", endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    running = ec2.describe_instances(Filters=[{"Name": "tag:Environment", "Values": ["lab"]},
                                              {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert [i for r in running["Reservations"] for i in r["Instances"]] == []
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Environment", "Values": ["lab"]}])["Vpcs"]
    assert vpcs == []
