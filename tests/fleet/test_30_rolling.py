"""Rolling updates and rollbacks in the lab under a steady load through the load balancer.

Each test runs a playbook while the load generator (ec2_fleet_dev.loadgen) sends 30 requests/s to the lab's load
balancer's HTTPS listener (verified with the lab CA, keep-alive connections) and polls the target
group's health; its JSON report and PNG timeline are kept in .cache/test-reports/rolling/. The tests
build on each other (one lab, in file order): 1.1.0 (test_28's healthy canary) -> 2.0.0 with a 30 s
registration delay (as an ALB keeps a new target `initial`), a broken 3.0.0 stopped at the first host, a
canary then rollback_all, a rollback to 1.1.0, the deploy lock, and last a host lost in the middle of an update.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import boto3
import pytest

from ec2_fleet_dev.loadgen import LoadGen, delivery
from ec2_fleet_dev.plays import ROOT, PlayResult

pytestmark = pytest.mark.fleet

REPORTS = ROOT / ".cache" / "test-reports" / "rolling"
RATE = 30
STATUS_LINE = re.compile(r'^\s*"(\S+): (updated|failed|reverted|revert failed|not updated|lost|unchanged) ', re.M)


def aws(fleet, service: str):
    return boto3.client(service, endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def target_group_arn(fleet) -> str:
    return aws(fleet, "elbv2").describe_target_groups(Names=["ec2-fleet-lab-tg"])["TargetGroups"][0]["TargetGroupArn"]


# The deploys before the named rollback keep 10 releases on each host instead of app_keep_releases' 5: test_28
# installs up to six on a host (its canaries and the failed-host cases) before this file adds 2.0.0 and 3.0.0,
# and with 5 the rollback's 1.1.0 would be pruned from the canary host (the rollback then refuses, rightly:
# "release 1.1.0 is not installed"). Pruning itself is molecule/app's test.
KEEP = {"app_keep_releases": 10}


def play_under_load(fleet, name: str, playbook: str, extra: dict | None = None) -> tuple[PlayResult, dict]:
    """Run a playbook while the load runs; keep the report and the timeline under REPORTS/name.*."""
    extra = {"rolling_audit_dir": str(fleet.state_dir / "audit"), **(extra or {})}
    assert fleet.endpoints["lb_url"].startswith("https://")
    with LoadGen(fleet.endpoints["lb_url"] + "/version", rate=RATE, timeout=5,
                 target_group_arn=target_group_arn(fleet), aws_url=fleet.env["AWS_URL"], max_seconds=1200,
                 ca_file=fleet.endpoints["lb_ca_file"], keep_alive=True) as load:
        time.sleep(2)  # a steady state before the play starts
        result = fleet.play(playbook, extra=extra)
        time.sleep(2)
    REPORTS.mkdir(parents=True, exist_ok=True)
    load.write(REPORTS / f"{name}.json", REPORTS / f"{name}.png")
    return result, load.report


def statuses(result: PlayResult) -> dict[str, str]:
    """host -> its status in the run's summary, in plan order."""
    summary = result.output[result.output.rindex("TASK [Report the run]"):]
    return dict(STATUS_LINE.findall(summary))


def assert_no_failed_requests(report: dict) -> None:
    assert report["requests"] >= RATE * report["duration_s"] * 0.9, report["achieved_rate"]
    assert report["sent"] == report["planned"] and report["unfinished"] == 0, delivery(report)
    assert report["failed"] == 0, (report["failures_by_kind"], report["failures"][:5])


def assert_fleet_on(fleet, version: str) -> None:
    # /ready can read "degraded" for a few seconds after a restart while the cache client's breaker
    # closes again: a bounded number of audits, the last one decides.
    for _ in range(3):
        verify = fleet.play("verify", extra={"app_version": version})
        if verify.rc == 0:
            break
        time.sleep(5)
    assert verify.rc == 0, verify.tail()
    assert f"3 host(s) on {version}, ready, healthy in the target group" in verify.output


def initial_spans(report: dict) -> dict[str, list[float]]:
    """instance -> seconds of each stretch the load balancer called it `initial` (from the health polls)."""
    spans: dict[str, list[float]] = {}
    since: dict[str, float] = {}
    for sample in report["target_health"]:
        for instance, state in sample["states"].items():
            if state == "initial":
                since.setdefault(instance, sample["t"])
            elif instance in since:
                spans.setdefault(instance, []).append(sample["t"] - since.pop(instance))
    return spans


def test_rolling_update_one_host_at_a_time_drops_no_request(converged):
    """With a 30 s registration delay: each registered host stays `initial` (no check, no traffic) for 30 s,
    as a real ALB keeps it while the registration spreads, and the run still waits it out."""
    fleet = converged
    delay = 30
    knob = fleet.state_dir / "balancer.json"  # read by the lab's balancer on every registration
    knob.write_text(json.dumps({"registration_delay": delay}))
    try:
        result, report = play_under_load(fleet, "1-update-1.1.0-to-2.0.0", "rolling_update",
                                         {"app_version": "2.0.0", **KEEP})
    finally:
        knob.unlink(missing_ok=True)
    assert result.rc == 0, result.tail()
    # Every host sat out the registration delay before its checks (and the run did not give up on it).
    spans = initial_spans(report)
    assert len(spans) == 3 and all(max(s) >= delay - 2 for s in spans.values()), spans
    print(f"\nFIGURE 30 s registration delay: initial for {spans}; {report['requests']} requests over HTTPS, "
          f"{report['stale_connection_retries']} stale keep-alive retries")
    assert set(statuses(result).values()) == {"updated"} and len(statuses(result)) == 3, statuses(result)
    assert_no_failed_requests(report)
    # At no moment was more than one host out of the load balancer.
    assert report["max_targets_out_of_service"] == 1, report["target_health"][-3:]
    # Every instance answered 2.0.0 by the end.
    assert {i for i, releases in report["answered_by"].items() if "2.0.0" in releases} == \
        {i for i in report["answered_by"]} and len(report["answered_by"]) == 3
    assert_fleet_on(fleet, "2.0.0")
    # The audit record: who, from which version to which, per-host timings; verify.yml shows the run.
    record_path = Path(re.search(r"record (\S+\.json)\)", result.output).group(1))
    record = json.loads(record_path.read_text())
    assert record["result"] == "succeeded" and record["version"] == "2.0.0" and record["who"]
    # From the release test_28_alarms.py's healthy canary left on every host.
    assert {h["from"] for h in record["hosts"]} == {"1.1.0"} and {h["to"] for h in record["hosts"]} == {"2.0.0"}
    assert all(h["timings"]["forward"]["total_s"] > 0 for h in record["hosts"])
    assert all(h["timings"]["forward"]["register_s"] >= delay for h in record["hosts"]), record["hosts"]
    verify = fleet.play("verify", extra={"app_version": "2.0.0"})
    assert f"Last rolling run: {record['run_id']} deploy 2.0.0" in verify.output


def test_a_broken_release_stops_at_the_first_host_which_goes_back(converged):
    fleet = converged
    result, report = play_under_load(fleet, "2-broken-3.0.0-stops", "rolling_update", {
        **KEEP, "app_version": "3.0.0", "app_release_env": {"APP_FORCE_UNREADY": "1"}, "app_activation_timeout": 20})
    assert result.rc != 0
    first, *others = statuses(result).items()
    assert first[1] == "failed" and [s for _, s in others] == ["not updated", "not updated"], statuses(result)
    # One clear summary: which host, which check, what it logged, and where it is now.
    failure = result.output[result.output.rindex("Fail the run when it did not succeed"):]
    assert f"{first[0]}: failed 2.0.0 -> 3.0.0 at switch to 3.0.0" in failure
    assert "failed the readiness check GET /ready" in failure and "HTTP 503" in failure
    assert "Back on 2.0.0 and healthy in the target group." in failure
    # The other hosts have 3.0.0 staged beside 2.0.0 (files, no change of release: every host stages before the
    # first batch) and never left the target group: healthy in every poll of the run.
    for host, _ in others:
        instance = host[host.index("i-"):]
        samples = report["target_health"]
        assert all(s["states"].get(instance) == "healthy" for s in samples), (host, samples)
    assert_no_failed_requests(report)
    assert report["max_targets_out_of_service"] == 1
    assert_fleet_on(fleet, "2.0.0")


def test_rollback_all_takes_back_the_canary_when_the_second_batch_fails(converged):
    fleet = converged
    # 3.0.0 is broken on the last host only (its readiness fails there): the canary (first host)
    # passes, the second batch (the other two) fails on one of them.
    result, report = play_under_load(fleet, "3-canary-then-rollback-all", "rolling_update", {
        **KEEP, "app_version": "3.0.0", "rolling_batch": [1, 2], "rolling_min_healthy_percent": 33,
        "rolling_on_failure": "rollback_all", "app_activation_timeout": 20,
        "app_release_env": {
            "APP_FORCE_UNREADY": "{{ '1' if inventory_hostname == ansible_play_hosts_all[-1] else '0' }}"},
    })
    assert result.rc != 0
    assert list(statuses(result).values()) == ["reverted", "reverted", "failed"], statuses(result)
    failure = result.output[result.output.rindex("Fail the run when it did not succeed"):]
    assert "Back on 2.0.0 and healthy in the target group." in failure
    assert_no_failed_requests(report)
    assert report["max_targets_out_of_service"] <= 2
    answered = {release for releases in report["answered_by"].values() for release in releases}
    assert answered == {"2.0.0", "3.0.0"}, report["answered_by"]  # the canary really served 3.0.0
    assert_fleet_on(fleet, "2.0.0")


def test_rollback_playbook_takes_the_fleet_back_to_a_named_release(converged):
    fleet = converged
    # 1.1.0, test_28's healthy canary: older than each host's previous release (3.0.0 or 2.0.0), and still
    # installed on every host because this file's deploys keep 10 releases (KEEP).
    result, report = play_under_load(fleet, "4-rollback-to-1.1.0", "rollback", {"rollback_to": "1.1.0"})
    assert result.rc == 0, result.tail()
    assert list(statuses(result).values()) == ["updated"] * 3, statuses(result)
    assert "Rollback 1.1.0 on 3 host(s): SUCCEEDED" in result.output
    assert_no_failed_requests(report)
    assert report["max_targets_out_of_service"] == 1
    assert_fleet_on(fleet, "1.1.0")


def test_a_second_run_refuses_while_the_first_holds_the_lock(converged):
    fleet = converged
    lock = "/ec2-fleet/lab/deploy/lock"
    ssm = aws(fleet, "ssm")
    extra = {"rolling_audit_dir": str(fleet.state_dir / "audit"), "app_version": "2.0.0"}
    first = subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/lab",
         "playbooks/rolling_update.yml",
         "-e", json.dumps({**extra, "app_artifact_cache_dir": str(fleet.state_dir / "artifacts")})],
        cwd=ROOT, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                holder = json.loads(ssm.get_parameter(Name=lock)["Parameter"]["Value"])
                break
            except ssm.exceptions.ParameterNotFound:
                assert first.poll() is None, first.communicate()[0][-3000:]
                time.sleep(0.5)
        else:
            pytest.fail("the first run never took the lock")
        second = fleet.play("rolling_update", extra=extra)
        assert second.rc != 0
        assert "holds the deploy lock /ec2-fleet/lab/deploy/lock" in second.output
        assert holder["run_id"] in second.output and f"since {holder['since']}" in second.output
        assert "Roll the release through the fleet" not in second.output  # nothing was touched
        output, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output[-4000:]
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=lock)  # released at the end
    assert_fleet_on(fleet, "2.0.0")

    # A lock left by a run that died is refused, then broken on purpose.
    stale = {"run_id": "20200101T000000Z-dead00", "who": "ops@old-box", "since": "2020-01-01T00:00:00Z",
             "action": "deploy", "version": "9.9.9"}
    ssm.put_parameter(Name=lock, Value=json.dumps(stale), Type="String")
    refused = fleet.play("rolling_update", extra=extra)
    assert refused.rc != 0 and "ops@old-box since 2020-01-01T00:00:00Z" in refused.output
    broken = fleet.play("rolling_update", extra={**extra, "rolling_break_lock": True})
    assert broken.rc == 0, broken.tail()
    assert "Broke the deploy lock of run 20200101T000000Z-dead00" in broken.output
    assert list(statuses(broken).values()) == ["unchanged"] * 3  # already on 2.0.0: nothing to do


def plan_order(fleet) -> list[str]:
    """The app hosts in the inventory's order: the order of the rolling plan."""
    inventory = str(Path(sys.executable).parent / "ansible-inventory")
    listing = subprocess.run([inventory, "-i", "inventories/lab", "--list"],
                             cwd=ROOT, env=fleet.env, capture_output=True, text=True, timeout=120)
    return json.loads(listing.stdout)["role_web"]["hosts"]


def test_a_host_lost_mid_update_is_reported_and_the_run_stops(converged):
    fleet = converged
    hosts = plan_order(fleet)
    instance = {h: "i-" + h.rsplit("-i-", 1)[1] for h in hosts}  # ec2-fleet-lab-web-i-0abc -> i-0abc
    first, victim, last = hosts
    elbv2, arn = aws(fleet, "elbv2"), target_group_arn(fleet)
    killed: dict[str, float] = {}

    def kill_when_the_first_host_is_out() -> None:
        """While the first host is out of the load balancer, kill the next host's container."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = {d["Target"]["Id"]: d["TargetHealth"]["State"]
                      for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
            if states.get(instance[first]) != "healthy":
                killed["wall"] = time.time()
                done = fleet.labctl("fault", "instance-kill", instance[victim])
                killed["rc"] = done.returncode
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=kill_when_the_first_host_is_out, daemon=True)
    watcher.start()
    try:
        result, report = play_under_load(fleet, "6-host-lost-mid-update", "rolling_update", {"app_version": "3.0.0"})
    finally:
        watcher.join(timeout=5)
    assert killed.get("rc") == 0, "the victim was not killed"
    assert result.rc != 0
    assert statuses(result) == {first: "updated", victim: "lost", last: "not updated"}, statuses(result)
    failure = result.output[result.output.rindex("Fail the run when it did not succeed"):]
    assert f"{victim}: lost" in failure and "unreachable during" in failure
    # The load balancer's own health checks took the dead target out.
    victim_states = {s["states"].get(instance[victim]) for s in report["target_health"]}
    assert "unhealthy" in victim_states, victim_states
    # Every planned request was sent; the ones that failed are those the balancer sent to the dead host
    # from the kill until its health checks marked it unhealthy (a request sent then may time out up to
    # `timeout` later, but it counts in the second it was sent). None failed before, none after.
    assert report["sent"] == report["planned"] and report["unfinished"] == 0, delivery(report)
    killed_t = killed["wall"] - datetime.fromisoformat(report["started_at"]).timestamp()
    marked_t = next(s["t"] for s in report["target_health"] if s["states"].get(instance[victim]) == "unhealthy")
    failed_seconds = [s["t"] for s in report["series"] if s["failed"]]
    window = [s for s in report["series"] if int(killed_t) <= s["t"] <= marked_t]
    print(f"\nFIGURE lost host: marked unhealthy {marked_t - killed_t:.1f} s after the kill; {report['failed']} "
          f"failed of {sum(s['sent'] for s in window)} requests sent in that time ({report['failures_by_kind']}), "
          f"0 of the {report['requests'] - sum(s['sent'] for s in window)} sent before or after; "
          f"{report['sent']} of {report['planned']} planned requests sent")
    assert all(int(killed_t) <= t <= marked_t + 1 for t in failed_seconds), (killed_t, marked_t, failed_seconds)
    # The dead instance is terminated (test_90 scales out again); the inventory cache must forget it.
    aws(fleet, "ec2").terminate_instances(InstanceIds=[instance[victim]])
    shutil.rmtree(fleet.env["ANSIBLE_INVENTORY_CACHE_CONNECTION"], ignore_errors=True)
