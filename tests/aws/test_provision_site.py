"""site.yml and verify.yml read the environment from AWS (the lab inventory).

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from provision_helpers import PREFIX

from ec2_fleet_dev.moto_aws import Run, cache_role_ready

pytestmark = pytest.mark.usefixtures("lab")


def test_site_and_verify_read_the_environment_from_aws(client: Callable, run: Callable[..., Run], lab: dict) -> None:
    """The control-node plays of site.yml and verify.yml (no host answers SSH here, so none is targeted)."""
    client("ssm").put_parameter(
        Name="/ec2-fleet/lab/database_url",
        Value="postgresql://orders:not-a-real-password@db.lab.internal/orders",
        Type="SecureString",
        Overwrite=True,
    )
    site = run("playbooks/site.yml", {"fleet_hosts": "no_such_group"}, "-v")
    assert site.rc == 0, site.tail()
    if cache_role_ready():
        group = client("elasticache").describe_replication_groups(ReplicationGroupId=PREFIX)["ReplicationGroups"][0]
        assert group["NodeGroups"][0]["PrimaryEndpoint"]["Address"] in site.output, site.tail()
    # A fleet without answering hosts is a failed audit, not an empty success.
    verify = run("playbooks/verify.yml", {"fleet_hosts": "no_such_group"})
    assert verify.rc != 0, verify.tail()
    assert "Fleet audit failed: 0 host(s)" in verify.output, verify.tail()
