"""The whole fleet from nothing, in the lab: provision, site, verify, then what a user checks.

The tests run in order and share one lab (a session fixture): each builds on the one before.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from fleettest import ROOT

pytestmark = pytest.mark.fleet


def http(url: str, data: dict | None = None, timeout: float = 10) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def served_instances(lb_url: str, requests: int = 60) -> set[str]:
    """Instance ids that answered /version through the load balancer (a bounded loop)."""
    seen = set()
    for _ in range(requests):
        status, _, body = http(f"{lb_url}/version")
        if status == 200:
            seen.add(body["instance_id"])
    return seen


def lab_instance_ids(fleet) -> set[str]:
    table = fleet.labctl("status").stdout
    return set(re.findall(r"^(i-[0-9a-f]+)\s", table, flags=re.M))


def test_provision_then_site_then_verify_from_nothing(fleet):
    provision = fleet.play("provision")
    assert provision.rc == 0, provision.output[-4000:]
    site = fleet.play("site")
    assert site.rc == 0, site.output[-4000:]
    fleet.runs["site"] = site
    verify = fleet.play("verify")
    assert verify.rc == 0, verify.output[-4000:]
    assert "3 host(s) on 1.0.0, ready, healthy in the target group, one cache endpoint" in verify.output


def test_requests_reach_all_three_instances_through_the_load_balancer(fleet):
    instances = lab_instance_ids(fleet)
    assert len(instances) == 3
    assert served_instances(fleet.endpoints["lb_url"]) == instances


def test_an_order_written_through_one_host_is_a_cache_hit_on_another(fleet):
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


def test_the_fleet_table_matches_the_load_balancer(fleet):
    table = fleet.labctl("status").stdout
    rows = [line for line in table.splitlines() if line.startswith("i-")]
    assert len(rows) == 3
    assert all("healthy" in row and "unhealthy" not in row for row in rows), table
    endpoints = {re.search(r"rediss?://\S+", row).group(0) for row in rows}
    assert len(endpoints) == 1, table


def test_a_second_site_run_changes_nothing(fleet):
    again = fleet.play("site")
    assert again.rc == 0, again.output[-4000:]
    changed = {host: counts["changed"] for host, counts in again.recap().items()}
    assert changed and set(changed.values()) == {0}, changed


def test_scale_out_to_five_configures_only_the_new_hosts(fleet):
    before = lab_instance_ids(fleet)
    provision = fleet.play("provision", extra={"aws_instances_count": 5})
    assert provision.rc == 0, provision.output[-4000:]
    site = fleet.play("site")
    assert site.rc == 0, site.output[-4000:]
    recap = site.recap()
    old = {h: c["changed"] for h, c in recap.items() if any(h.endswith(i) for i in before)}
    new = {h: c["changed"] for h, c in recap.items() if h != "localhost" and h not in old}
    assert len(old) == 3 and set(old.values()) == {0}, recap
    assert len(new) == 2 and all(v > 0 for v in new.values()), recap
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < 5:
        seen |= served_instances(fleet.endpoints["lb_url"], 40)
    assert seen == lab_instance_ids(fleet) and len(seen) == 5


def test_playbooks_and_roles_do_not_know_the_lab():
    """Lab and AWS run the same playbooks: the differences live in inventories/ only."""
    lab_only = re.compile(r"127\.0\.0\.1:5000|inventories/lab|lab_state_dir|\.cache/lab|labctl")
    offenders = [str(p.relative_to(ROOT)) for d in ("playbooks", "roles")
                 for p in (ROOT / d).rglob("*") if p.is_file() and lab_only.search(p.read_text(errors="ignore"))]
    assert offenders == []
    for env in ("lab", "staging", "production"):
        files = sorted(str(p.relative_to(ROOT / "inventories" / env)) for p in (ROOT / "inventories" / env).rglob("*")
                       if p.is_file() or p.is_symlink())
        assert files == ["aws_ec2.yml", "group_vars/all/00_shared", "group_vars/all/env.yml"], (env, files)
    diff = subprocess.run(["git", "diff", "--no-index", "--stat", "inventories/lab", "inventories/production"],
                          cwd=ROOT, capture_output=True, text=True).stdout
    assert "aws_ec2.yml" in diff and "env.yml" in diff


