"""Benchmark 4: `ansible-inventory -i inventories/lab --list` against 1,000 instances in moto."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import boto3

from ec2_fleet_dev.bench.benchlib import ROOT, base_env, load, log, machine, median, timed
from ec2_fleet_dev.plays import moto_server

TARGET_CACHED_S = 2.0
TAGS = {"Project": "ec2-fleet", "Environment": "lab", "Role": "web", "Name": "ec2-fleet-lab-web"}


def seed(url: str, instances: int) -> None:
    """A VPC with one subnet per AZ (2 AZs) and `instances` running instances tagged like the lab's."""
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    zones = ["us-east-1a", "us-east-1b"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.250.{4 * i}.0/22",
                                 AvailabilityZone=zone)["Subnet"]["SubnetId"] for i, zone in enumerate(zones)]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}]
    for i, subnet in enumerate(subnets):
        left = instances // len(subnets) + (1 if i < instances % len(subnets) else 0)
        while left > 0:
            batch = min(left, 100)
            ec2.run_instances(ImageId=image, MinCount=batch, MaxCount=batch, InstanceType="t3.small",
                              SubnetId=subnet, TagSpecifications=tags)
            left -= batch


def upstream_copy(workdir: Path) -> Path:
    """inventories/lab as it would be with amazon.aws.aws_ec2 itself: the comparison in the same run."""
    inventory = workdir / "upstream"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    for item in (ROOT / "inventories" / "lab" / "group_vars" / "all").iterdir():
        (inventory / "group_vars" / "all" / item.name).symlink_to(item.resolve())
    text = (ROOT / "inventories" / "lab" / "aws_ec2.yml").read_text()
    text = re.sub(r"(?m)^plugin: .*$", "plugin: amazon.aws.aws_ec2", text)
    text = re.sub(r"(?m)^hostvars_include:.*\n", "", text)
    text = re.sub(r"(?m)^  ec2_tags: .*\n", "", text)
    (inventory / "aws_ec2.yml").write_text(text)
    return inventory


def run(instances: int = 1000, runs: int = 3) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="ec2-fleet-bench-inventory-"))
    cache = workdir / "inventory-cache"
    cold, warm, listing = [], [], {}
    up_cold, up_warm = [], []
    try:
        # moto's web server would log every request.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with moto_server() as url:
            log(f"inventory: seeding {instances} instances in moto at {url}")
            seed(url, instances)
            env = {**base_env(), "AWS_URL": url, "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache),
                   # No fact cache entries for these hosts (the repo's .cache/facts holds the lab's).
                   "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(workdir / "facts")}
            cmd = ["ansible-inventory", "-i", "inventories/lab", "--list"]
            upstream = ["ansible-inventory", "-i", str(upstream_copy(workdir)), "--list"]
            # Alternate: cold (the cache emptied first), then warm (the cache the cold run wrote), for the
            # project's inventory and for the same file with amazon.aws.aws_ec2.
            for i in range(runs):
                for label, command, buckets in (("fleet_aws_ec2", cmd, (cold, warm)),
                                                ("amazon.aws.aws_ec2", upstream, (up_cold, up_warm))):
                    shutil.rmtree(cache, ignore_errors=True)
                    for kind, bucket in zip(("cold", "warm"), buckets, strict=True):
                        t = timed(command, env, timeout=600)
                        if t.rc != 0:
                            raise RuntimeError(f"ansible-inventory failed (rc {t.rc}):\n{t.output[-3000:]}")
                        bucket.append(t)
                        log(f"inventory: {label} {kind} run {i + 1}: {t.wall:.2f} s wall, {t.cpu:.2f} s CPU, "
                            f"load {t.load}")
            out = warm[-1].output
            listing = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    hosts = len(listing.get("_meta", {}).get("hostvars", {}))
    groups = {g: len(v.get("hosts", [])) for g, v in listing.items() if g not in ("_meta", "all") and v.get("hosts")}
    if hosts != instances:
        raise RuntimeError(f"the inventory lists {hosts} hosts, not {instances}")
    warm_wall, warm_cpu = median([t.wall for t in warm]), median([t.cpu for t in warm])
    cold_wall, cold_cpu = median([t.wall for t in cold]), median([t.cpu for t in cold])
    up_warm_wall, up_warm_cpu = median([t.wall for t in up_warm]), median([t.cpu for t in up_warm])
    up_cold_wall, up_cold_cpu = median([t.wall for t in up_cold]), median([t.cpu for t in up_cold])
    return {
        "title": f"4. Inventory at scale: ansible-inventory --list, {instances} instances",
        "method": (
            f"moto (in-process, 127.0.0.1) holds {instances} running instances tagged like the lab's "
            "(Project=ec2-fleet, Environment=lab, Role=web, Name) over 2 AZs. The whole process "
            "`ansible-inventory -i inventories/lab --list` is timed (wall clock, and the CPU time it used) with the "
            f"project's ansible.cfg; {runs} rounds of cold (inventory cache emptied first: the plugin calls "
            "DescribeInstances) then warm (the cache the cold run wrote), each round also with the same inventory "
            "file given to amazon.aws.aws_ec2 itself (the plugin the project's fleet_aws_ec2 extends). Medians. "
            "The process is single-threaded: its CPU time is what the wall time would be on an idle machine."
        ),
        "machine": machine(),
        "targets": [{"target": f"warm (cached) under {TARGET_CACHED_S:.0f} s, whole process",
                     "measured": f"{warm_wall:.2f} s wall ({warm_cpu:.2f} s CPU, load {warm[-1].load})",
                     "met": warm_wall < TARGET_CACHED_S}],
        "tables": [{
            "title": "ansible-inventory --list, seconds (median of runs)",
            "columns": ["plugin", "cache", "wall s", "CPU s", "each run: wall s (load)"],
            "rows": [
                ["fleet_aws_ec2 (inventories/lab)", "cold", cold_wall, cold_cpu, _runs(cold)],
                ["fleet_aws_ec2 (inventories/lab)", "warm", warm_wall, warm_cpu, _runs(warm)],
                ["amazon.aws.aws_ec2 (same file)", "cold", up_cold_wall, up_cold_cpu, _runs(up_cold)],
                ["amazon.aws.aws_ec2 (same file)", "warm", up_warm_wall, up_warm_cpu, _runs(up_warm)],
            ],
        }],
        "figures": {"instances": instances, "hosts_listed": hosts, "groups": groups,
                    "cold_wall_s": cold_wall, "cold_cpu_s": cold_cpu, "warm_wall_s": warm_wall, "warm_cpu_s": warm_cpu,
                    "upstream_cold_wall_s": up_cold_wall, "upstream_cold_cpu_s": up_cold_cpu,
                    "upstream_warm_wall_s": up_warm_wall, "upstream_warm_cpu_s": up_warm_cpu,
                    "warm_cpu_ratio_to_upstream": round(warm_cpu / up_warm_cpu, 2),
                    "output_bytes": len(json.dumps(listing)), "load_at_end": load(),
                    "runs": {name: [{k: v for k, v in t.__dict__.items() if k != "output"} for t in bucket]
                             for name, bucket in (("cold", cold), ("warm", warm), ("upstream_cold", up_cold),
                                                  ("upstream_warm", up_warm))}},
        "notes": [
            "Cold time is mostly moto answering DescribeInstances for 1,000 instances; AWS pages it (1,000 per page).",
            "What a warm run still does: start Python and Ansible, import boto3 (the plugin), read the cached "
            "instance list, build 1,000 hosts in 5 groups, then print every host's variables: the few instance "
            "attributes in hostvars_include plus every group_vars/all variable (about 3 kB a host).",
        ],
    }


def _runs(bucket: list) -> str:
    return ", ".join(f"{t.wall} ({t.load})" for t in bucket)
