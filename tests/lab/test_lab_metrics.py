"""The lab's CloudWatch side, for real: moto, the real HAProxy and two lab instances (podman containers)
behind it. Requests through the load balancer on 127.0.0.1, a share of them answered 500 by the targets:
the load balancer's metrics appear in moto with the dimensions aws_monitoring's alarms use and the counts
of what this test sent and received, and an alarm shaped by aws_monitoring's own plan (target 5xx share,
period 10, 3 evaluation periods, 2 to alarm) goes to ALARM while the errors last and back to OK after.

The targets run a small stand-in web server (no database, no Redis: a full fleet is tens of minutes); it
fails the same share of `GET /orders/<id>` reads the same way as orders-api's APP_FAULT_READ_ERROR_PERCENT,
whose own tests are in app/tests. One lab, on EC2_FLEET_TEST_LAB_NET (default 10.243); every loop bounded."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_monitoring import arn_suffix, aws_monitoring_alarm_plan

from ec2_fleet_dev.labs import LAB_TAGS, Lab, instances_serving, lab_env, wait_for
from ec2_fleet_dev.plays import ROOT

FAULT_SERVER = r"""
import http.server, sys, time
IID = sys.argv[1]
credit = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        global credit
        status = 200
        if self.path.startswith("/orders/"):
            try:
                percent = int(open("/run/fault-percent").read())
            except (OSError, ValueError):
                percent = 0
            credit += percent
            if credit >= 100:
                credit -= 100
                status = 500
            try:
                time.sleep(int(open("/run/fault-delay-ms").read()) / 1000)
            except (OSError, ValueError):
                pass
        body = (IID + "\n").encode()
        self.send_response(status); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = f"lmet-{uuid.uuid4().hex[:6]}"
    state_dir = tmp_path_factory.mktemp("lab-state")
    env = lab_env(name, state_dir, net=os.environ.get("EC2_FLEET_TEST_LAB_NET", "10.243"),
                  base={**os.environ, "CONTAINERS_CONF": str(ROOT / "tools" / "containers.conf"),
                        "EC2_FLEET_LAB_REGISTRATION_DELAY": "2"})  # fmt: skip
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    lab = Lab(name, state_dir, env, {}, session)
    try:
        up = lab.labctl("up", "--json")
        assert up.returncode == 0, up.stderr
        lab.endpoints = json.loads(up.stdout)
        yield lab
    finally:
        down = lab.labctl("down", timeout=180)
        print(f"\nlab log: {state_dir / 'controller.log'}; down: {down.returncode}")


@pytest.fixture(scope="module")
def service(lab: Lab) -> dict[str, Any]:
    """A VPC, two instances running the fault server, a target group and an ALB whose HTTPS listener forwards."""
    elbv2 = lab.client("elbv2")
    vpc, subnets, ids = instances_serving(lab, FAULT_SERVER, "/usr/local/bin/fault.py")
    tg = elbv2.create_target_group(
        Name=f"{lab.name}-tg", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="instance",
        HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2, UnhealthyThresholdCount=2, Matcher={"HttpCode": "200"}, Tags=LAB_TAGS,
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    lb = elbv2.create_load_balancer(Name=f"{lab.name}-alb", Subnets=subnets, Tags=LAB_TAGS)["LoadBalancers"][0][
        "LoadBalancerArn"]  # fmt: skip
    elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTPS", Port=443, Certificates=[{"CertificateArn": lab.endpoints[
            "lb_certificate_arn"]}], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )  # fmt: skip
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in ids])

    def healthy() -> bool:
        states = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        return [d["TargetHealth"]["State"] for d in states] == ["healthy", "healthy"]

    wait_for("both targets healthy", healthy, 60)
    return {"ids": ids, "tg": tg, "lb": lb}


def set_fault(lab: Lab, service: dict, percent: int, delay_ms: int = 0) -> None:
    """What the stand-in servers do to order reads from now on (APP_FAULT_READ_ERROR_PERCENT / _DELAY_MS)."""
    for iid in service["ids"]:
        subprocess.run(["podman", "exec", f"{lab.name}-{iid}", "sh", "-c",
                        f"echo {percent} > /run/fault-percent; echo {delay_ms} > /run/fault-delay-ms"],
                       check=True, timeout=30)  # fmt: skip


def get(lab: Lab, path: str) -> int:
    context = ssl.create_default_context(cafile=lab.endpoints["lb_ca_file"])
    try:
        with urllib.request.urlopen(lab.endpoints["lb_url"] + path, timeout=10, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def alarm_state(cw: Any, name: str) -> dict[str, Any]:
    return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def drive(lab: Lab, cw: Any, name: str, until: str, sent: Counter, timeout: float) -> float:
    """Order reads through the load balancer (about 10 a second) until the alarm is `until`; returns seconds."""
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < timeout:
        sent[get(lab, f"/orders/{n}")] += 1
        n += 1
        if n % 10 == 0 and alarm_state(cw, name)["StateValue"] == until:
            return time.monotonic() - started
        time.sleep(0.08)
    raise AssertionError(f"alarm {name} not {until} after {timeout} s: {alarm_state(cw, name)}; sent {dict(sent)}")


def total(cw: Any, metric: str, dims: list[dict[str, str]], since: datetime) -> float:
    """The sum of a metric's datapoints in moto since `since` (get_metric_data: exact dimensions)."""
    answer = cw.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                            "MetricName": metric, "Dimensions": dims}, "Period": 3600, "Stat": "Sum"}}],
        StartTime=since, EndTime=since + timedelta(seconds=3600),
    )["MetricDataResults"][0]  # fmt: skip
    return sum(answer["Values"])


def test_metrics_and_the_target_5xx_share_alarm(lab: Lab, service: dict) -> None:
    cw = lab.client("cloudwatch")
    since = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    settings = {"threshold": 0.05, "period": 10, "evaluation_periods": 3, "datapoints_to_alarm": 2,
                "treat_missing_data": "notBreaching"}  # fmt: skip
    resources = {"prefix": lab.name, "load_balancer_arn": service["lb"], "target_group_arn": service["tg"],
                 "instance_ids": [], "cache_clusters": [], "rds_instance_id": "", "healthy_hosts_floor": 2}
    defaults = {k: settings for k in ("alb_5xx_share", "target_5xx_share", "target_response_time_p99",
                                       "unhealthy_hosts", "healthy_hosts")}  # fmt: skip
    plan = {a["AlarmName"]: a for a in aws_monitoring_alarm_plan(resources, defaults)}
    name = f"{lab.name}-target-5xx-share"
    # The operators' subscription: an SQS queue on the alarm's topic (what an https or email endpoint would get).
    sns, sqs = lab.client("sns"), lab.client("sqs")
    topic = sns.create_topic(Name=f"{lab.name}-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{lab.name}-ops")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])  # fmt: skip
    cw.put_metric_alarm(**plan[name], AlarmActions=[topic], OKActions=[topic])
    assert alarm_state(cw, name)["StateValue"] != "ALARM"  # moto starts alarms in OK

    # 20 % of order reads fail on both targets: the alarm fires.
    set_fault(lab, service, 20)
    sent: Counter = Counter()
    to_alarm = drive(lab, cw, name, "ALARM", sent, 120)
    alarm = alarm_state(cw, name)
    assert alarm["StateReason"].startswith("Threshold Crossed: ")
    assert "were greater than the threshold (0.05) (minimum 2 datapoints for OK -> ALARM transition)" in alarm[
        "StateReason"], alarm["StateReason"]  # fmt: skip
    assert len(json.loads(alarm["StateReasonData"])["evaluatedDatapoints"]) == 3
    assert set(sent) == {200, 500} and 0.15 <= sent[500] / sum(sent.values()) <= 0.25, sent

    # What moto holds, once metrics.py published the last seconds, is what this test sent and got.
    time.sleep(int(lab.env.get("EC2_FLEET_LAB_METRICS_SECONDS", "5")) + 3)
    lb_dims = [{"Name": "LoadBalancer", "Value": arn_suffix(service["lb"], "app")}]
    tg_dims = [{"Name": "TargetGroup", "Value": arn_suffix(service["tg"], "targetgroup")}, *lb_dims]
    for dims in (lb_dims, tg_dims):
        assert total(cw, "RequestCount", dims, since) == sum(sent.values())
        assert total(cw, "HTTPCode_Target_5XX_Count", dims, since) == sent[500]
        assert total(cw, "HTTPCode_Target_2XX_Count", dims, since) == sent[200]
    assert total(cw, "HTTPCode_ELB_5XX_Count", lb_dims, since) == 0
    # A pass that read the health just before the targets turned healthy may be stamped in the second before.
    settled = since + timedelta(seconds=int(lab.env.get("EC2_FLEET_LAB_METRICS_SECONDS", "5")) + 2)
    healthy = cw.get_metric_data(
        MetricDataQueries=[{"Id": "h", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                            "MetricName": "HealthyHostCount", "Dimensions": tg_dims}, "Period": 3600,
                            "Stat": "Minimum"}}], StartTime=settled, EndTime=settled + timedelta(seconds=3600),
    )["MetricDataResults"][0]["Values"]  # fmt: skip
    assert healthy == [2.0]
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/ApplicationELB")["Metrics"]}
    assert {"TargetResponseTime", "UnHealthyHostCount"} <= names

    # The errors stop: back to OK.
    set_fault(lab, service, 0)
    clean: Counter = Counter()
    to_ok = drive(lab, cw, name, "OK", clean, 120)
    assert set(clean) == {200}, clean
    # One datapoint or more under the threshold: CloudWatch says "was" of one, "were" of more.
    reason = alarm_state(cw, name)["StateReason"]
    assert re.search(r"\d+ out of the last 3 datapoints \[.*\] (was|were) not greater than the threshold \(0\.05\)",
                     reason), reason
    # Each change reached the subscriber, once, with CloudWatch's subject and the state's reason.
    notes: list[dict] = []
    for _ in range(10):  # bounded: the OK notification is sent from its own thread
        notes += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                                                      WaitTimeSeconds=1).get("Messages", [])]
        if len(notes) >= 2:
            break
        time.sleep(0.5)
    assert [n["Subject"].split(":")[0] for n in notes] == ["ALARM", "OK"], notes
    assert notes[0]["Subject"].startswith(f'ALARM: "{name}" in ')
    assert [json.loads(n["Message"])["OldStateValue"] for n in notes] == ["OK", "ALARM"]
    assert "were greater than the threshold (0.05)" in json.loads(notes[0]["Message"])["NewStateReason"]
    # Every target response time is a sample in moto: one per read a target answered.
    samples = cw.get_metric_data(
        MetricDataQueries=[{"Id": "n", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                            "MetricName": "TargetResponseTime", "Dimensions": lb_dims}, "Period": 3600,
                            "Stat": "SampleCount"}}], StartTime=since, EndTime=since + timedelta(seconds=3600),
    )["MetricDataResults"][0]["Values"]  # fmt: skip
    assert samples and samples[0] >= sum(sent.values())  # the clean reads published so far come on top

    # Slow reads (300 ms, the old release answered in about 1 ms): the p99 latency alarm of the plan fires.
    slow = dict(plan[f"{lab.name}-target-response-time-p99"], Threshold=0.25)
    cw.put_metric_alarm(**slow)
    set_fault(lab, service, 0, delay_ms=300)
    slow_reads: Counter = Counter()
    to_slow_alarm = drive(lab, cw, slow["AlarmName"], "ALARM", slow_reads, 120)
    reason = alarm_state(cw, slow["AlarmName"])["StateReason"]
    assert "were greater than the threshold (0.25)" in reason and "[0.3" in reason, reason
    assert json.loads(alarm_state(cw, slow["AlarmName"])["StateReasonData"])["statistic"] == "p99"

    # No target answers: HAProxy's own 503s are the load balancer's 5xx, and both hosts count unhealthy.
    for iid in service["ids"]:
        subprocess.run(["podman", "exec", f"{lab.name}-{iid}", "pkill", "-f", "fault.py"], check=True, timeout=30)
    elbv2 = lab.client("elbv2")
    wait_for("both targets unhealthy", lambda: [d["TargetHealth"]["State"] for d in elbv2.describe_target_health(
        TargetGroupArn=service["tg"])["TargetHealthDescriptions"]] == ["unhealthy", "unhealthy"], 60)  # fmt: skip
    refused = Counter(get(lab, f"/orders/{n}") for n in range(10))
    assert refused == Counter({503: 10})
    time.sleep(int(lab.env.get("EC2_FLEET_LAB_METRICS_SECONDS", "5")) + 3)
    assert total(cw, "HTTPCode_ELB_5XX_Count", lb_dims, since) == 10
    assert total(cw, "HTTPCode_Target_5XX_Count", lb_dims, since) == sent[500]
    unhealthy = cw.get_metric_data(
        MetricDataQueries=[{"Id": "u", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB",
                            "MetricName": "UnHealthyHostCount", "Dimensions": tg_dims}, "Period": 3600,
                            "Stat": "Maximum"}}], StartTime=since, EndTime=since + timedelta(seconds=3600),
    )["MetricDataResults"][0]["Values"]  # fmt: skip
    assert unhealthy == [2.0]
    print(f"\nlab metrics: to ALARM {to_alarm:.0f} s after {sum(sent.values())} reads ({sent[500]} 500s); "
          f"to OK {to_ok:.0f} s after {sum(clean.values())} clean reads; p99 alarm {to_slow_alarm:.0f} s after "
          f"{sum(slow_reads.values())} slow reads")


def test_down_leaves_no_container(lab: Lab) -> None:
    assert lab.labctl("down", timeout=180).returncode == 0
    assert lab.containers() == {}
