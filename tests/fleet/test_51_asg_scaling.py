"""Target tracking in the lab, as the deployment plan sizes the backend: a group of the baked image (1 to 3 here),
scaling on its average CPU (70 %) and memory use (80 %), the only targets behind the load balancer while the
tests run (the fixed fleet's hosts leave the target group, drained, and come back after).

The lab gives each of the group's instances its type's CPU and memory scaled to this machine (a t3.small: 0.1 of a
core, 1 GiB), publishes their CPUUtilization and mem_used_percent to CloudWatch, and evaluates the policies as
AWS's target-tracking alarms do on 10 s periods instead of 60 (devkit lab/scaling.py). Load goes through the load
balancer (ec2_fleet_dev.loadgen); the memory is taken by a process the test starts on the instance.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from test_30_rolling import aws
from test_50_bake import asg_of_image, container, members, target_health

from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.lab.scaling import Cgroups, resources
from ec2_fleet_dev.labs import wait_for
from ec2_fleet_dev.loadgen import LoadGen, delivery

pytestmark = pytest.mark.fleet

MAX = 3
LIGHT_RATE = 3  # requests/s while the group scales in: well below any target


@pytest.fixture(scope="module")
def group(baked, tmp_path_factory):
    fleet, release, _, image = baked
    with asg_of_image(fleet, release, image, tmp_path_factory.mktemp("asg"), aws_asg_max_size=MAX,
                      aws_asg_instance_warmup=30, aws_asg_health_check_grace_period=60) as g:  # fmt: skip
        # The role waited for it in service: its ec2-fleet-boot completed the launch hook once the app was ready,
        # and only then was it registered.
        (first,) = members(g)
        assert members(g)[first] == "InService"
        log = subprocess.run(["podman", "exec", container(fleet, first), "cat", "/var/log/cloud-init-output.log"],
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        assert "ready in" in log and "lifecycle hook launch: CONTINUE" in log, log
        wait_for(f"{first} healthy", lambda: target_health(g).get(first) == "healthy", 120)
        with alone_behind_the_load_balancer(g):
            yield fleet, release, g


@contextmanager
def alone_behind_the_load_balancer(g: dict) -> Iterator[None]:
    """The group's instances the only targets: the fixed fleet's hosts leave the target group (drained) for the
    block, and come back healthy after it."""
    elbv2 = g["elbv2"]
    found = elbv2.describe_target_health(TargetGroupArn=g["tg"])["TargetHealthDescriptions"]
    statics = [{"Id": t["Target"]["Id"], "Port": t["Target"]["Port"]} for t in found
               if t["Target"]["Id"] not in members(g)]  # fmt: skip
    assert statics, found
    elbv2.deregister_targets(TargetGroupArn=g["tg"], Targets=statics)
    try:
        wait_for("the fixed fleet drained out", lambda: all(
            target_health(g).get(t["Id"]) in (None, "unused") for t in statics), 120)  # fmt: skip
        yield
    finally:
        elbv2.register_targets(TargetGroupArn=g["tg"], Targets=statics)
        wait_for("the fixed fleet back", lambda: all(
            target_health(g).get(t["Id"]) == "healthy" for t in statics), 180)  # fmt: skip


def desired(g: dict) -> int:
    found = g["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[g["name"]])
    return found["AutoScalingGroups"][0]["DesiredCapacity"]


def live(g: dict) -> list[str]:
    return [i for i, s in members(g).items() if s in ("Pending", "Pending:Wait", "Pending:Proceed", "InService")]


def group_average(fleet, g: dict, namespace: str, metric: str, seconds: float) -> float | None:
    """The group's metric over the last `seconds`, as CloudWatch has it from the lab."""
    now = datetime.now(timezone.utc)
    found = aws(fleet, "cloudwatch").get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {
        "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": g["name"]}]}, "Period": 5, "Stat": "Average"}}],
        StartTime=now - timedelta(seconds=seconds), EndTime=now)["MetricDataResults"][0]["Values"]  # fmt: skip
    return sum(found) / len(found) if found else None


def decisions(fleet) -> list[dict]:
    return json.loads((fleet.state_dir / "status.json").read_text()).get("scaling", [])


def load(fleet, rate: float) -> LoadGen:
    return LoadGen(fleet.endpoints["lb_url"] + "/version", rate=rate, timeout=5, max_seconds=900,
                   ca_file=fleet.endpoints["lb_ca_file"], keep_alive=True)  # fmt: skip


def assert_no_failed_requests(report: dict) -> None:
    assert report["sent"] == report["planned"] and report["unfinished"] == 0, delivery(report)
    assert report["failed"] == 0, (report["failures_by_kind"], report["failures"][:5])


class Loads:
    """Load generators through the load balancer, started and stopped together: who answered, their reports."""

    def __init__(self, fleet) -> None:
        self.fleet, self.running, self.reports = fleet, [], []

    def add(self, rate: float) -> None:
        self.running.append(load(self.fleet, rate).__enter__())

    def answering(self) -> set[str]:
        return set().union(*(run.answering() for run in self.running))

    def stop(self) -> None:
        for run in self.running:
            run.__exit__(None, None, None)
        self.reports = [run.report for run in self.running]


class CpuHigh:
    """Load through the load balancer raised 10 requests/s at a time (every 20 s, at most 80/s) until the group's
    CPU is above 78 %: what a request costs varies with the machine, the target does not."""

    def __init__(self, fleet, g: dict) -> None:
        self.fleet, self.g, self.loads, self.seen = fleet, g, Loads(fleet), []

    def __enter__(self) -> Loads:
        for _ in range(8):
            self.loads.add(10)
            time.sleep(20)
            cpu = group_average(self.fleet, self.g, "AWS/EC2", "CPUUtilization", 15)
            self.seen.append(cpu)
            if cpu is not None and cpu > 78:
                return self.loads
        self.loads.stop()
        raise AssertionError(f"80 requests/s did not drive the group's CPU above 78 %: {self.seen}")

    def __exit__(self, *exc: object) -> None:
        self.loads.stop()


class MemoryHigh:
    """Light load through the load balancer while a process holds the only instance's memory above the target."""

    def __init__(self, fleet, g: dict) -> None:
        self.fleet, self.g, self.loads = fleet, g, Loads(fleet)

    def __enter__(self) -> Loads:
        (instance,) = live(self.g)
        self.hog = MemoryHog(self.fleet, instance, 88)
        self.hog.__enter__()
        self.loads.add(LIGHT_RATE)
        return self.loads

    def __exit__(self, *exc: object) -> None:
        self.loads.stop()
        self.hog.__exit__(*exc)


def scale_out_then_in(fleet, g: dict, during_high) -> dict:
    """While `during_high` holds the group's metric high (a context manager giving its Loads): the group scales out
    (never above MAX) and the new instance serves; after it, under light load, back in to 1, each leaving instance
    out of the target group (drained) before it is terminated. Returns what the figures need."""
    (first,) = live(g)
    seen_desired, drained_first = set(), True

    def scaled_out() -> bool:
        seen_desired.add(desired(g))
        return max(seen_desired) > 1

    made = len(decisions(fleet))
    with during_high as high:
        wait_for("a scale-out decision", scaled_out, 180)
        # The lab's status file shows it within a pass (a second) of the group's new desired capacity.
        decision = wait_for("the decision in the lab's status", lambda: (decisions(fleet)[made:] or [None])[0], 10)
        new = wait_for("the new instance", lambda: sorted(set(live(g)) - {first}) or None, 30)
        answered = wait_for(f"{new} serving", lambda: set(new) & high.answering() and time.time(), 240)
        seen_desired.add(desired(g))
        time.sleep(10)
        seen_desired.add(desired(g))
    with load(fleet, LIGHT_RATE) as light:
        def back_to_one() -> bool:
            nonlocal drained_first
            seen_desired.add(desired(g))
            health = target_health(g)
            for instance, state in members(g).items():
                if state.startswith("Terminating") and health.get(instance) in ("healthy", "initial"):
                    drained_first = False
            return desired(g) == 1 and len(members(g)) == 1

        wait_for("the group back to 1", back_to_one, 420)
        time.sleep(2)
    assert max(seen_desired) <= MAX, seen_desired
    assert drained_first, "an instance left while still healthy in the target group"
    assert_no_failed_requests(light.report)
    for report in high.reports:
        assert_no_failed_requests(report)
    answered_by: dict[str, set[str]] = {}
    for report in high.reports:
        for instance, releases in report["answered_by"].items():
            answered_by.setdefault(instance, set()).update(releases)
    return {"decision": decision, "answered": answered, "new": new, "answered_by": answered_by,
            "requests": sum(r["requests"] for r in high.reports)}  # fmt: skip


def test_load_above_70_percent_cpu_scales_the_group_out_and_back_in_without_a_failed_request(group):
    fleet, release, g = group
    time.sleep(20)  # the new instance's first minutes are not its steady state
    cpu = CpuHigh(fleet, g)
    result = scale_out_then_in(fleet, g, cpu)
    assert "cpu" in result["decision"]["cause"], result["decision"]
    assert set(result["answered_by"]) >= {*result["new"]}, result["answered_by"]
    assert all(releases == {release} for releases in result["answered_by"].values()), result["answered_by"]
    rate = 10 * len(cpu.loads.running)
    print(f"\nCPU of the group while the load rose 10 requests/s at a time: {cpu.seen}")
    print(f"\nFIGURE scale_out_to_first_request_s={result['answered'] - result['decision']['at']:.1f} (target "
          f"tracking's decision on CPU to the new instance's first answer through the load balancer, at {rate} "
          "requests/s)")


class MemoryHog:
    """A process on the instance holding memory until the block ends (the instance's own, not the app's)."""

    def __init__(self, fleet, instance: str, percent: float) -> None:
        self.name = container(fleet, instance)
        config = LabConfig()
        self.limit = resources(config, "t3.small")[1] * 1024 * 1024
        used = Cgroups().read(self.name)
        assert used is not None
        self.size = max(int(self.limit * percent / 100 - used[1]), 0)

    def __enter__(self) -> MemoryHog:
        code = (f"import time\nb = bytearray({self.size})\nb[::4096] = b'x' * len(range(0, {self.size}, 4096))\n"
                "time.sleep(900)\n")  # fmt: skip
        subprocess.run(["podman", "exec", "-d", self.name, "python3", "-c", code], check=True, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["podman", "exec", self.name, "pkill", "-f", "bytearray"], timeout=30, check=False)


def test_memory_use_above_80_percent_scales_the_group_out_and_back_in_without_a_failed_request(group):
    fleet, _, g = group
    wait_for("one instance", lambda: len(live(g)) == 1 and desired(g) == 1, 60)
    result = scale_out_then_in(fleet, g, MemoryHigh(fleet, g))
    assert "memory" in result["decision"]["cause"], result["decision"]
    assert set(result["answered_by"]) >= {*result["new"]}, result["answered_by"]
    memory = group_average(fleet, g, "CWAgent", "mem_used_percent", 60)
    assert memory is not None and memory < 72, memory  # the hog is gone: below 90 % of the target


def test_a_killed_instance_is_replaced_by_the_group_and_only_requests_sent_to_it_before_it_is_marked_fail(group):
    """Two in service (min 2 for the test, so target tracking keeps both); one's container is killed for good
    (EC2 still says running, as a host that froze): the load balancer's checks mark it unhealthy, the group's ELB
    health check replaces it (drained, terminated, a new one launched from the template), and the new one serves."""
    fleet, release, g = group
    autoscaling = g["autoscaling"]
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=g["name"], MinSize=2, DesiredCapacity=2)
    try:
        wait_for("two healthy", lambda: len(live(g)) == 2 and all(
            target_health(g).get(i) == "healthy" for i in live(g)), 240)  # fmt: skip
        victim, other = sorted(live(g))
        with LoadGen(fleet.endpoints["lb_url"] + "/version", rate=10, timeout=5, max_seconds=900,
                     ca_file=fleet.endpoints["lb_ca_file"], keep_alive=True, target_group_arn=g["tg"],
                     aws_url=fleet.env["AWS_URL"]) as run:  # fmt: skip
            time.sleep(3)
            killed_at = time.time()
            done = fleet.labctl("fault", "instance-kill", victim)
            assert done.returncode == 0, done.stdout + done.stderr
            replacement = wait_for("a replacement", lambda: sorted(set(live(g)) - {victim, other}) or None, 180)
            wait_for(f"{replacement} serving", lambda: set(replacement) & run.answering(), 240)
            wait_for(f"{victim} terminated", lambda: victim not in members(g), 120)
            time.sleep(2)
        report = run.report
        assert report["sent"] == report["planned"] and report["unfinished"] == 0, delivery(report)
        killed_t = killed_at - datetime.fromisoformat(report["started_at"]).timestamp()
        # Out of service: unhealthy, or already draining (the group's health check acts within a second of the
        # load balancer's mark, so a sample a second apart may see only the draining), or gone.
        seen = [(s["t"], s["states"].get(victim)) for s in report["target_health"] if s["t"] >= killed_t]
        marked_t = next((t for t, state in seen if state != "healthy"), None)
        assert marked_t is not None, (report["target_health_errors"][:3], seen[-5:])
        failed_seconds = [s["t"] for s in report["series"] if s["failed"]]
        assert all(int(killed_t) <= t <= marked_t + 1 for t in failed_seconds), (killed_t, marked_t, failed_seconds)
        assert set(report["answered_by"]) >= {other, *replacement}, report["answered_by"]
        assert all(set(r) == {release} for r in report["answered_by"].values()), report["answered_by"]
        print(f"\nFIGURE asg_killed_instance: out of service (unhealthy or draining) {marked_t - killed_t:.1f} s "
              f"after the kill, {report['failed']} of {report['requests']} requests failed, all sent in that time")
    finally:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=g["name"], MinSize=1, DesiredCapacity=1)
