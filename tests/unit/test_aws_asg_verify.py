"""verify.yml's judgement of an Auto Scaling group (filter aws_asg_verify over asg_fleet_info's result): what an
operator must hear about - an instance on another release, unhealthy in the group or a target group, fewer in
service than desired, a scale-out that would launch another release, a refresh still going on - and nothing else
(an instance on its way in or out is shown, not judged)."""

from __future__ import annotations

from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_asg import aws_asg_verify

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/1"


def instance(instance_id: str, release: str = "2.0.0", state: str = "InService", health: str = "Healthy",
             target: str = "healthy") -> dict[str, Any]:  # fmt: skip
    return {"instance_id": instance_id, "lifecycle_state": state, "health_status": health,
            "availability_zone": "us-east-1a", "launch_template_version": "7", "image_id": "ami-1",
            "release": release, "target_health": {TG: target}, "target": target}  # fmt: skip


def info(*instances: dict[str, Any], desired: int = 2, release: str = "2.0.0", refresh: dict | None = None) -> dict:
    return {"exists": True, "instances": list(instances), "refresh": refresh or {},
            "group": {"name": "web", "min_size": 1, "max_size": 5, "desired_capacity": desired,
                      "launch_template_version": "7", "image_id": "ami-1", "release": release}}  # fmt: skip


def test_a_group_on_the_release_has_no_problem() -> None:
    view = aws_asg_verify(info(instance("i-1"), instance("i-2")), "2.0.0")
    assert view["problems"] == [] and view["in_service"] == 2
    assert [row["problems"] for row in view["rows"]] == [[], []]


def test_each_instance_problem_is_named_on_its_row() -> None:
    view = aws_asg_verify(info(instance("i-1", release="1.0.0"), instance("i-2", health="Unhealthy"),
                               instance("i-3", target="draining"), instance("i-4", release=""), desired=4),
                          "2.0.0")  # fmt: skip
    assert view["problems"] == []
    assert [row["problems"] for row in view["rows"]] == [
        ["release 1.0.0 != 2.0.0"], ["group health Unhealthy"], ["target draining"],
        ["release (image untagged or gone) != 2.0.0"]]  # fmt: skip


def test_an_instance_on_its_way_in_is_shown_not_judged_but_the_group_is_short() -> None:
    view = aws_asg_verify(info(instance("i-1"), instance("i-2", release="1.0.0", state="Pending:Wait",
                                                        target="not registered")), "2.0.0")  # fmt: skip
    assert [row["problems"] for row in view["rows"]] == [[], []] and view["in_service"] == 1
    assert view["problems"] == ["1 instance(s) in service of the 2 desired"]


def test_a_scale_out_of_another_release_and_a_refresh_in_progress_are_the_group_s_problems() -> None:
    refresh = {"instance_refresh_id": "r-1", "status": "InProgress", "percentage_complete": 50}
    view = aws_asg_verify(info(instance("i-1"), instance("i-2"), release="1.0.0", refresh=refresh), "2.0.0")
    assert view["problems"] == [
        "a scale-out would launch release 1.0.0 (launch template version 7), not 2.0.0",
        "instance refresh r-1 InProgress (50 %)"]  # fmt: skip


def test_a_missing_group_is_a_problem() -> None:
    view = aws_asg_verify({"exists": False, "group": {}, "instances": [], "refresh": {}}, "2.0.0")
    assert view == {"rows": [], "problems": ["the Auto Scaling group does not exist"], "in_service": 0}
