"""How the lab's load balancer (devkit lab/balancer.py) reads a listener's forward action from moto, as created
and modified through the real elbv2 API (moto in-process), and the per-request weight map HAProxy draws from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend

from ec2_fleet_dev.lab.balancer import (
    MAP_SLOTS,
    NO_TARGET,
    forward_groups,
    listener_load_balancers,
    listener_routes,
    weight_map,
)

REGION = "us-east-1"


@pytest.fixture
def alb() -> Iterator[dict[str, Any]]:
    """A load balancer and two target groups in moto (no listener yet)."""
    with mock_aws():
        ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"]["SubnetId"] for n, z in enumerate("ab")]  # fmt: skip
        tgs = [elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8000, VpcId=vpc)["TargetGroups"][0][
            "TargetGroupArn"] for name in ("lab-main", "lab-canary")]  # fmt: skip
        lb = elbv2.create_load_balancer(Name="lab-alb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        yield {"elbv2": elbv2, "lb": lb, "main": tgs[0], "canary": tgs[1],
               "backend": get_backend("elbv2")["123456789012"][REGION]}  # fmt: skip


def weighted(*pairs: tuple[str, int | None]) -> list[dict[str, Any]]:
    groups = [{"TargetGroupArn": arn} if w is None else {"TargetGroupArn": arn, "Weight": w} for arn, w in pairs]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def test_weights_of_create_and_modify_listener_are_what_the_frontend_follows(alb: dict[str, Any]) -> None:
    elbv2, main, canary = alb["elbv2"], alb["main"], alb["canary"]
    listener = elbv2.create_listener(LoadBalancerArn=alb["lb"], Protocol="HTTP", Port=80,
                                     DefaultActions=weighted((main, 95), (canary, 5)))["Listeners"][0][
        "ListenerArn"]  # fmt: skip
    assert listener_routes(alb["backend"]) == {"http": ("forward", ((main, 95), (canary, 5)))}
    assert listener_load_balancers(alb["backend"]) == {"http": alb["lb"]}
    for step in ((75, 25), (0, 100), (100, 0)):
        elbv2.modify_listener(ListenerArn=listener, DefaultActions=weighted((main, step[0]), (canary, step[1])))
        assert listener_routes(alb["backend"])["http"] == ("forward", ((main, step[0]), (canary, step[1])))
    # The plain form: one target group, all of the traffic.
    elbv2.modify_listener(ListenerArn=listener, DefaultActions=[{"Type": "forward", "TargetGroupArn": canary}])
    assert listener_routes(alb["backend"])["http"] == ("forward", ((canary, 1),))


def test_a_weight_left_out_is_1_and_one_aws_refuses_is_read_within_0_to_999(alb: dict[str, Any]) -> None:
    elbv2, main, canary = alb["elbv2"], alb["main"], alb["canary"]
    elbv2.create_listener(LoadBalancerArn=alb["lb"], Protocol="HTTP", Port=80,
                          DefaultActions=weighted((main, None), (canary, None)))  # fmt: skip
    assert listener_routes(alb["backend"])["http"] == ("forward", ((main, 1), (canary, 1)))
    # moto stores a weight of 1000 (AWS answers ValidationError): the lab reads the nearest weight AWS allows.
    assert forward_groups({"ForwardConfig": {"TargetGroups": [{"TargetGroupArn": main, "Weight": 1000},
                                                              {"TargetGroupArn": canary, "Weight": -3}]}}) == (
        (main, 999), (canary, 0))  # fmt: skip
    twice = [{"TargetGroupArn": main, "Weight": "7"}, {"TargetGroupArn": main, "Weight": 2}]
    assert forward_groups({"ForwardConfig": {"TargetGroups": twice}}) == ((main, 7),)
    assert forward_groups({"Type": "forward"}) == ()


def test_the_https_listener_forwards_by_weights_while_http_redirects(alb: dict[str, Any]) -> None:
    elbv2, main, canary = alb["elbv2"], alb["main"], alb["canary"]
    certificate = boto3.client("acm", region_name=REGION).request_certificate(DomainName="lab.example")[
        "CertificateArn"]  # fmt: skip
    redirect = {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
    elbv2.create_listener(LoadBalancerArn=alb["lb"], Protocol="HTTP", Port=80, DefaultActions=[redirect])
    elbv2.create_listener(LoadBalancerArn=alb["lb"], Protocol="HTTPS", Port=443,
                          Certificates=[{"CertificateArn": certificate}],
                          DefaultActions=weighted((main, 3), (canary, 1)))  # fmt: skip
    assert listener_routes(alb["backend"]) == {"http": ("redirect", ()),
                                               "https": ("forward", ((main, 3), (canary, 1)))}  # fmt: skip


def slots(entries: list[tuple[str, str]]) -> dict[str, int]:
    """Backend -> how many of the MAP_SLOTS values its ranges hold; the ranges must tile 0..MAP_SLOTS-1."""
    held: dict[str, int] = {}
    expected_first = 0
    for key, backend in entries:
        first, last = (int(n) for n in key.split(":"))
        assert first == expected_first and last >= first, entries
        held[backend] = held.get(backend, 0) + last - first + 1
        expected_first = last + 1
    assert expected_first == MAP_SLOTS, entries
    return held


@pytest.mark.parametrize(
    ("weights", "shares"),
    [
        ((95, 5), {"tg-main": 0.95, "tg-canary": 0.05}),
        ((75, 25), {"tg-main": 0.75, "tg-canary": 0.25}),
        ((0, 100), {"tg-canary": 1.0}),
        ((100, 0), {"tg-main": 1.0}),
        ((1, 1), {"tg-main": 0.5, "tg-canary": 0.5}),
        ((999, 1), {"tg-main": 0.999, "tg-canary": 0.001}),
    ],
)
def test_each_group_gets_its_weight_over_the_sum_of_the_draws(weights: tuple[int, int], shares: dict) -> None:
    held = slots(weight_map((("arn-main", weights[0]), ("arn-canary", weights[1])),
                            {"arn-main": "tg-main", "arn-canary": "tg-canary"}))  # fmt: skip
    assert set(held) == set(shares)  # a group of weight 0 gets no slot at all
    for backend, share in shares.items():
        assert abs(held[backend] / MAP_SLOTS - share) <= 1 / MAP_SLOTS


def test_three_groups_and_one_the_lab_has_no_backend_for() -> None:
    held = slots(weight_map((("a", 1), ("gone", 1), ("b", 1)), {"a": "tg-a", "b": "tg-b"}))
    assert set(held) == {"tg-a", "tg-b", NO_TARGET}  # the share of a group without backend answers 503
    assert max(held.values()) - min(held.values()) <= 1


def test_every_weight_0_leaves_the_map_empty() -> None:
    assert weight_map((("a", 0), ("b", 0)), {"a": "tg-a", "b": "tg-b"}) == []  # every request: NO_TARGET, 503
