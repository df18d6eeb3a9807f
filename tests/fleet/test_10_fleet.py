"""The whole fleet from nothing, in the lab: provision, site, verify, then what a user checks.

Every file in tests/fleet shares one lab (session fixtures in conftest.py); files run in the order
of their number, and the scale-out to five hosts (test_90) comes last (`make test` runs some files, test_90
among them, on a second lab: REST_FLEET in tools/run-tests.sh).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from datetime import datetime

import boto3
import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.cloudwatch_agent import cloudwatch_agent_config_errors

from ec2_fleet_dev.lbhttp import http, lab_instance_ids, served_instances
from ec2_fleet_dev.plays import ROOT

pytestmark = pytest.mark.fleet


def test_provision_then_site_then_verify_from_nothing(converged):
    fleet = converged
    assert fleet.runs["provision"].rc == 0 and fleet.runs["site"].rc == 0
    verify = fleet.play("verify")
    assert verify.rc == 0, verify.output[-4000:]
    assert "3 host(s) on 1.0.0, ready, healthy in the target group, one cache endpoint" in verify.output


def _task_start(output: str, task: str) -> datetime:
    """When a task started: profile_tasks prints a timestamp as each task starts, and the task's
    banner follows it (later, when the banner waits for a host that does not skip the task)."""
    banner = re.search(r"^TASK \[(?:[\w.]+ : )?" + re.escape(task) + r"\]", output, flags=re.M)
    assert banner, f"no banner for task {task!r} in the output"
    stamps = re.findall(r"^(\w+ \d+ \w+ \d{4}\s+[\d:]+ [+-]\d{4}) \(", output[:banner.start()], flags=re.M)
    assert stamps, f"no profile_tasks timestamp before the task {task!r}"
    return datetime.strptime(re.sub(r"\s+", " ", stamps[-1]), "%A %d %B %Y %H:%M:%S %z")


def test_a_busy_first_boot_held_apt_locks_while_site_installed_the_first_packages(converged):
    """Each new instance boots with apt's and dpkg's locks held until the first package task tried them,
    then 10 s more (the lab's emulation of apt-daily and unattended-upgrades on a new Ubuntu AMI), and
    site.yml, run once, still configured every host."""
    fleet = converged
    output = fleet.runs["site"].output
    started = _task_start(output, "Install base packages")
    first_stamp = re.search(r"^(\w+ \d+ \w+ \d{4}\s+[\d:]+ [+-]\d{4}) \(", output, flags=re.M)
    assert first_stamp, "no profile_tasks timestamp in site.yml's output"
    play_started = datetime.strptime(re.sub(r"\s+", " ", first_stamp[1]), "%A %d %B %Y %H:%M:%S %z")
    # The hosts that ran the task: its results up to the next task's timestamp (names end in the instance id).
    results = output[output.index("Install base packages]"):]
    results = results[:re.search(r"^\w+ \d+ \w+ \d{4} ", results, flags=re.M).start()]
    installed = set(re.findall(r"^(?:changed|ok): \[[^\]]*?(i-[0-9a-f]+)\]", results, flags=re.M))
    assert len(installed) == 3 and installed <= lab_instance_ids(fleet), results
    lab = fleet.env["EC2_FLEET_LAB_NAME"]
    for instance in sorted(installed):
        journal = subprocess.run(["podman", "exec", f"{lab}-{instance}", "journalctl", "--no-pager", "-o", "cat",
                                  "-u", "ec2-fleet-busy-boot.service"],
                                 capture_output=True, text=True, timeout=30, env=fleet.env).stdout
        held = re.search(r"a package task tried apt's locks at ([\d.]+); holding ([\d.]+)s more", journal)
        released = re.search(r"released apt and dpkg locks at ([\d.]+)", journal)
        assert held and released, f"{instance}: the busy boot did not hold apt's locks:\n{journal}"
        tried_at = datetime.fromtimestamp(float(held[1]), tz=started.tzinfo)
        released_at = datetime.fromtimestamp(float(released[1]), tz=started.tzinfo)
        print(f"FIGURE busy boot: {instance}: first try {tried_at:%H:%M:%S}, released {held[2]} s later; site.yml's "
              f"first package task started {released_at.timestamp() - started.timestamp():.0f} s before that")
        # The locks were first tried during site.yml (not by provision or anything before it) ...
        assert tried_at.timestamp() >= play_started.timestamp() - 1, (
            f"{instance}: apt's locks were first tried at {tried_at}, before site.yml began at {play_started}")
        # ... and were still held when the first package task started (its timestamp has whole seconds).
        assert started.timestamp() + 1 < released_at.timestamp(), (
            f"{instance}: the first package task started at {started}, after the locks were released "
            f"at {released_at}: the play never met the busy boot"
        )


def test_requests_reach_all_three_instances_through_the_load_balancer(converged):
    fleet = converged
    instances = lab_instance_ids(fleet)
    assert len(instances) == 3
    assert served_instances(fleet.endpoints["lb_url"]) == instances


def test_an_order_written_through_one_host_is_a_cache_hit_on_another(converged):
    fleet = converged
    lb = fleet.endpoints["lb_url"]
    status, headers, order = http(f"{lb}/orders", {"customer": "fleet-test",
                                                  "items": [{"sku": "A-1", "qty": 2, "unit_price_cents": 1250}]})
    assert status == 201, order
    writer = headers.get("x-served-by")
    # Read it until two different hosts have answered: the second host's read comes from the shared cache.
    answers: list[tuple[str, str]] = []
    for _ in range(30):
        status, headers, body = http(f"{lb}/orders/{order['id']}")
        assert status == 200 and body["id"] == order["id"]
        answers.append((headers.get("x-served-by"), headers.get("x-cache")))
        if len({host for host, _ in answers}) >= 2 and answers[-1][1] == "hit":
            break
    first_reader = answers[0][0]
    hits_elsewhere = [(h, c) for h, c in answers if h != first_reader and c == "hit"]
    assert hits_elsewhere, f"no cache hit on a host other than the first reader ({first_reader}): {answers}"
    assert writer and all(h for h, _ in answers)


AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"


def _on_host(fleet, instance: str, *command: str) -> str:
    lab = fleet.env["EC2_FLEET_LAB_NAME"]
    done = subprocess.run(["podman", "exec", f"{lab}-{instance}", *command], capture_output=True, text=True,
                          timeout=30, env=fleet.env)  # fmt: skip
    return done.stdout


def test_each_request_s_json_log_line_is_in_the_file_the_cloudwatch_agent_ships(converged):
    """The app's journal reaches, as its JSON lines, the file the CloudWatch agent's configuration ships to the
    environment's log group (which provision.yml made, with its retention); the system's log does not hold them
    twice. The agent itself cannot run in the lab (cloudwatch_agent_install: false): its configuration is
    checked here as the agent would check it."""
    fleet = converged
    logs = boto3.client("logs", endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    [group] = logs.describe_log_groups(logGroupNamePrefix="/ec2-fleet/lab/journal")["logGroups"]
    assert group["retentionInDays"] == 30
    ids = {}
    for _ in range(30):  # bounded: one request per host, until every host answered one
        request_id = f"cwagent-{uuid.uuid4().hex[:12]}"
        status, headers, _ = http(f"{fleet.endpoints['lb_url']}/version", headers={"X-Request-ID": request_id})
        assert status == 200
        ids.setdefault(headers.get("x-served-by"), request_id)
        if len(ids) == 3:
            break
    assert set(ids) == lab_instance_ids(fleet)
    for instance, request_id in sorted(ids.items()):
        config = json.loads(_on_host(fleet, instance, "cat", AGENT_CONFIG))
        assert cloudwatch_agent_config_errors(config) == []
        shipped = {e["file_path"]: e for e in config["logs"]["logs_collected"]["files"]["collect_list"]}
        assert set(shipped) == {"/var/log/ec2-fleet/orders-api.log", "/var/log/syslog"}
        assert {e["log_group_name"] for e in shipped.values()} == {group["logGroupName"]}
        assert config["metrics"]["metrics_collected"]["mem"]["measurement"] == ["mem_used_percent"]
        line = ""
        for _ in range(20):  # bounded: rsyslog writes within a second or two
            found = [x for x in _on_host(fleet, instance, "cat", "/var/log/ec2-fleet/orders-api.log").splitlines()
                     if request_id in x]  # fmt: skip
            if found:
                line = found[-1]
                break
            time.sleep(0.5)
        assert line, f"{instance}: no line of request {request_id} in /var/log/ec2-fleet/orders-api.log"
        entry = json.loads(line)  # the line as the app printed it: JSON, nothing before it
        assert entry["request_id"] == request_id and entry["logger"] == "orders_api.access"
        assert request_id not in _on_host(fleet, instance, "cat", "/var/log/syslog")
        assert "systemd" in _on_host(fleet, instance, "tail", "-n", "200", "/var/log/syslog")


def test_the_fleet_table_matches_the_load_balancer(converged):
    fleet = converged
    table = fleet.labctl("status").stdout
    rows = [line for line in table.splitlines() if line.startswith("i-")]
    assert len(rows) == 3
    assert all("healthy" in row and "unhealthy" not in row for row in rows), table
    endpoints = {re.search(r"rediss?://\S+", row).group(0) for row in rows}
    assert len(endpoints) == 1, table


def test_a_second_site_run_changes_nothing(converged):
    fleet = converged
    again = fleet.play("site")
    assert again.rc == 0, again.output[-4000:]
    changed = {host: counts["changed"] for host, counts in again.recap().items()}
    assert changed and set(changed.values()) == {0}, changed


def test_playbooks_and_roles_do_not_know_the_lab():
    """Lab and AWS run the same playbooks: the differences live in inventories/ only."""
    lab_only = re.compile(r"127\.0\.0\.1:5000|inventories/lab|lab_state_dir|\.cache/lab|labctl")
    offenders = [str(p.relative_to(ROOT)) for d in ("playbooks", "roles")
                 for p in (ROOT / d).rglob("*") if p.is_file() and lab_only.search(p.read_text(errors="ignore"))]
    assert offenders == []
    for env in ("lab", "staging", "production"):
        files = sorted(str(p.relative_to(ROOT / "inventories" / env)) for p in (ROOT / "inventories" / env).rglob("*")
                       if (p.is_file() or p.is_symlink()) and p.name != "vault.yml")  # an operator's own, git-ignored
        # An environment with secrets ships the example of its vault file (Ansible does not load it).
        example = [] if env == "lab" else ["group_vars/all/vault.yml.example"]
        assert files == ["aws_ec2.yml", "group_vars/all/00_shared", "group_vars/all/env.yml", *example], (env, files)
    diff = subprocess.run(["git", "diff", "--no-index", "--stat", "inventories/lab", "inventories/production"],
                          cwd=ROOT, capture_output=True, text=True).stdout
    assert "aws_ec2.yml" in diff and "env.yml" in diff


