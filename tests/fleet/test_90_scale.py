"""Scale out to five hosts: last in its session, since every earlier file expects three (`make test` runs it
after the Auto Scaling files, on their lab: REST_FLEET in tools/run-tests.sh)."""

from __future__ import annotations

import time

import pytest

from ec2_fleet_dev.lbhttp import http, lab_instance_ids, served_instances

pytestmark = pytest.mark.fleet


def test_scale_out_to_five_configures_only_the_new_hosts(converged):
    fleet = converged
    before = lab_instance_ids(fleet)
    provision = fleet.play("provision", extra={"aws_instances_count": 5})
    assert provision.rc == 0, provision.output[-4000:]
    # Scale out at the release the fleet runs now (earlier files may have rolled it forward).
    status, _, body = http(fleet.endpoints["lb_url"] + "/version")
    assert status == 200
    site = fleet.play("site", extra={"app_version": body["version"]})
    assert site.rc == 0, site.output[-4000:]
    recap = site.recap()
    old = {h: c["changed"] for h, c in recap.items() if any(h.endswith(i) for i in before)}
    new = {h: c["changed"] for h, c in recap.items() if h != "localhost" and h not in old}
    # Earlier files may have replaced a host (test_30 terminates the one it killed).
    assert len(old) == len(before) >= 2 and set(old.values()) == {0}, recap
    assert len(new) == 5 - len(before) and all(v > 0 for v in new.values()), recap
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < 5:
        seen |= served_instances(fleet.endpoints["lb_url"], 40)
    assert seen == lab_instance_ids(fleet) and len(seen) == 5
