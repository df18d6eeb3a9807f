"""The load balancer provision.yml makes, alb_target registering and draining a host, HTTPS with a
certificate, and a domain's ACM certificate.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from provision_helpers import PREFIX, TAGS, _live_instances, _network, _tag_filters, _tags, _target_play

from ec2_fleet_dev.moto_aws import Run

pytestmark = pytest.mark.usefixtures("lab")


def test_target_group_and_load_balancer_match_inputs(client: Callable) -> None:
    elb = client("elbv2")
    net = _network(client)
    found = elb.describe_target_groups(Names=[f"{PREFIX}-tg", f"{PREFIX}-canary"])["TargetGroups"]
    by_name = {g["TargetGroupName"]: g for g in found}  # in no particular order
    tg, canary = by_name[f"{PREFIX}-tg"], by_name[f"{PREFIX}-canary"]
    # The canary group is the main one's twin: every setting alike but the name (and ARN).
    own = ("TargetGroupArn", "TargetGroupName", "LoadBalancerArns")
    differs = {k for k in tg if k not in own and tg[k] != canary[k]}
    assert not differs, {k: (tg[k], canary[k]) for k in differs}
    assert tg["TargetType"] == "instance"
    assert tg["Port"] == 8000
    assert tg["VpcId"] == net["vpc"]
    assert tg["HealthCheckPath"] == "/healthz"
    assert tg["HealthCheckIntervalSeconds"] == 7
    assert tg["HealthCheckTimeoutSeconds"] == 3
    assert tg["HealthyThresholdCount"] == 3
    assert tg["UnhealthyThresholdCount"] == 4
    assert tg["Matcher"]["HttpCode"] == "200-299"
    for group in (tg, canary):
        attrs = {
            a["Key"]: a["Value"]
            for a in elb.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])["Attributes"]
        }
        assert attrs["deregistration_delay.timeout_seconds"] == "4"
        assert attrs["slow_start.duration_seconds"] == "45"
    tags = {d["ResourceArn"]: _tags(d) for d in elb.describe_tags(ResourceArns=[tg["TargetGroupArn"],
            canary["TargetGroupArn"]])["TagDescriptions"]}  # fmt: skip
    assert tags[canary["TargetGroupArn"]] == {**tags[tg["TargetGroupArn"]], "Name": f"{PREFIX}-canary"}
    # Provisioning registers nothing: registration belongs to alb_target.
    assert elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"] == []

    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    assert lb["SecurityGroups"] == [net["groups"]["alb"]["GroupId"]]
    assert {z["SubnetId"] for z in lb["AvailabilityZones"]} == {s["SubnetId"] for s in net["tiers"]["public"]}
    assert lb["State"]["Code"] == "active"
    lb_attrs = {
        a["Key"]: a["Value"]
        for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    }
    assert lb_attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert lb_attrs["deletion_protection.enabled"] == "false"  # on in production only
    assert lb_attrs["access_logs.s3.enabled"] == "false"  # no bucket given
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    # No certificate here (aws_alb_allow_http_only, see conftest.py): one HTTP listener that forwards, by
    # weight, every request to the main group and none to the canary group.
    assert [(li["Protocol"], li["Port"]) for li in listeners] == [("HTTP", 80)]
    action = listeners[0]["DefaultActions"][0]
    assert action["Type"] == "forward"
    weights = [(g["TargetGroupArn"], g["Weight"]) for g in action["ForwardConfig"]["TargetGroups"]]
    assert weights == [(tg["TargetGroupArn"], 100), (canary["TargetGroupArn"], 0)]


def test_alb_target_registers_and_drains(
    client: Callable, run: Callable[..., Run], moto_url: str, tmp_path: Path, lab: dict
) -> None:
    elb = client("elbv2")
    tg = elb.describe_target_groups(Names=[f"{PREFIX}-tg"])["TargetGroups"][0]["TargetGroupArn"]
    instances = _live_instances(client("ec2"), _tag_filters(Role="web"))
    ids = {i["InstanceId"] for i in instances}

    def states() -> dict[str, str]:
        found = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}

    play, inventory = _target_play(tmp_path, moto_url, "registered", instances)
    registered = run(play, None, inventory=inventory)
    assert registered.rc == 0, registered.tail()
    assert states() == dict.fromkeys(ids, "healthy")
    again = run(play, None, inventory=inventory)
    assert again.rc == 0 and all(c["changed"] == 0 for c in again.recap().values()), again.tail()

    play, inventory = _target_play(tmp_path, moto_url, "drained", instances[:1])
    drained = run(play, None, inventory=inventory)
    assert drained.rc == 0, drained.tail()
    remaining = {k: v for k, v in states().items() if v != "unused"}
    assert remaining == {i: "healthy" for i in ids - {instances[0]["InstanceId"]}}


def test_certificate_turns_on_https_and_keeps_targets(client: Callable, run: Callable[..., Run], lab: dict) -> None:
    elb = client("elbv2")
    tg = elb.describe_target_groups(Names=[f"{PREFIX}-tg"])["TargetGroups"][0]["TargetGroupArn"]

    def registered() -> dict[str, str]:
        found = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found if d["TargetHealth"]["State"] != "unused"}

    before = registered()
    assert before, "test_alb_target_registers_and_drains leaves one target registered"
    cert = client("acm").request_certificate(DomainName="lab.ec2-fleet.test")["CertificateArn"]
    # With the certificate, a changed health check interval and one more tag: all updated in place.
    extra = {
        **lab["extra"],
        "aws_alb_certificate_arn": cert,
        "aws_alb_health_check_interval": 10,
        "aws_alb_tags": {**TAGS, "CostCenter": "ops"},
    }
    first = run("playbooks/provision.yml", extra, "--tags", "aws_alb")
    assert first.rc == 0, first.tail()
    second = run("playbooks/provision.yml", extra, "--tags", "aws_alb")
    assert second.rc == 0 and second.recap()["localhost"]["changed"] == 0, second.tail(8000)

    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    listeners = {li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"]}
    assert sorted(listeners) == [80, 443]
    http = listeners[80]["DefaultActions"][0]
    assert http["Type"] == "redirect"
    assert http["RedirectConfig"]["Protocol"] == "HTTPS"
    assert http["RedirectConfig"]["Port"] == "443"
    assert http["RedirectConfig"]["StatusCode"] == "HTTP_301"
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert [c["CertificateArn"] for c in https["Certificates"]] == [cert]
    forward = https["DefaultActions"][0]
    assert forward["Type"] == "forward"
    first = forward["ForwardConfig"]["TargetGroups"][0]
    assert (first["TargetGroupArn"], first["Weight"]) == (tg, 100)
    # Re-provisioning never touches the registrations (they belong to alb_target).
    assert registered() == before
    assert elb.describe_target_groups(TargetGroupArns=[tg])["TargetGroups"][0]["HealthCheckIntervalSeconds"] == 10
    for described in elb.describe_tags(ResourceArns=[tg, lb])["TagDescriptions"]:
        assert _tags(described).get("CostCenter") == "ops", described


def test_a_domain_gets_an_acm_certificate_whose_dns_record_is_shown_and_waited_for(
    client: Callable, run: Callable[..., Run], lab: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No certificate ARN but aws_alb_certificate_domain: provision requests a certificate (DNS validation),
    prints the CNAME record that validates it, waits until ACM has issued it, then serves HTTPS with it."""
    import moto.settings

    # moto issues a requested certificate once it is this many seconds old (60 by default).
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 5)
    domain = "shop.ec2-fleet.test"
    extra = {**lab["extra"], "aws_alb_allow_http_only": False, "aws_alb_certificate_domain": domain,
             "aws_alb_deletion_protection": True, "aws_alb_access_logs_bucket": "ec2-fleet-lab-logs",
             "aws_alb_access_logs_prefix": "alb"}  # fmt: skip
    first = run("playbooks/provision.yml", extra, "--tags", "aws_alb")
    assert first.rc == 0, first.tail()
    acm = client("acm")
    mine = [c for c in acm.list_certificates()["CertificateSummaryList"] if c["DomainName"] == domain]
    assert len(mine) == 1, mine
    cert = acm.describe_certificate(CertificateArn=mine[0]["CertificateArn"])["Certificate"]
    assert (cert["Type"], cert["Status"]) == ("AMAZON_ISSUED", "ISSUED")
    record = cert["DomainValidationOptions"][0]["ResourceRecord"]
    assert f"is PENDING_VALIDATION. Create this record in the DNS zone of {domain}" in first.output
    assert f"{record['Name']} CNAME {record['Value']}" in first.output
    elb = client("elbv2")
    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    listeners = {li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"]}
    assert [c["CertificateArn"] for c in listeners[443]["Certificates"]] == [cert["CertificateArn"]]
    attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb)["Attributes"]}
    assert (attrs["deletion_protection.enabled"], attrs["access_logs.s3.enabled"]) == ("true", "true")
    assert (attrs["access_logs.s3.bucket"], attrs["access_logs.s3.prefix"]) == ("ec2-fleet-lab-logs", "alb")
    # A second run finds the same certificate: nothing requested, nothing changed.
    second = run("playbooks/provision.yml", extra, "--tags", "aws_alb")
    assert second.rc == 0 and second.recap()["localhost"]["changed"] == 0, second.tail(8000)
    assert [c for c in acm.list_certificates()["CertificateSummaryList"] if c["DomainName"] == domain] == mine
