#!/usr/bin/env python3
"""Run the benchmarks and record their figures in bench/results/latest.{json,md} (see bench/README.md).

The benchmarks are `ec2_fleet_dev.bench` (devkit/); run this with .venv/bin/python (`make venv` installs it).

  bench/run.py inventory  [--instances 1000] [--runs 3]
  bench/run.py converge   [--runs 3] [--scale 10,20] [--scale-runs 2]
  bench/run.py rolling
  bench/run.py cache
  bench/run.py throughput
  bench/run.py classic    [--settings lab,recommended]
  bench/run.py asg
  bench/run.py projection (no lab: from the figures in latest.json)
  bench/run.py all
"""

from __future__ import annotations

import argparse
import os

from ec2_fleet_dev.bench import asg, cache, classic, converge, inventory, projection, rolling, throughput
from ec2_fleet_dev.bench.benchlib import log, write_results


def _sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    inv = sub.add_parser("inventory", help="4. ansible-inventory --list against 1,000 instances in moto")
    inv.add_argument("--instances", type=int, default=1000)
    inv.add_argument("--runs", type=int, default=3, help="cold + warm rounds")
    conv = sub.add_parser("converge", help="1. converge and no-op, tuned vs stock; 2. no-op at 10 and 20 hosts")
    conv.add_argument("--runs", type=int, default=3, help="no-op runs per setting at 3 hosts")
    conv.add_argument("--scale", type=_sizes, default=[10, 20], help="fleet sizes after 3 (comma list; '' skips)")
    conv.add_argument("--scale-runs", type=int, default=2, help="no-op runs per fleet size")
    conv.add_argument("--net", default=os.environ.get("EC2_FLEET_BENCH_NET", "10.233"),
                      help="first two octets of the benchmark lab's VPC (EC2_FLEET_BENCH_NET)")
    for name, what in (("rolling", "3. rolling-update overhead per host beside the waits"),
                       ("cache", "5. one shared Redis versus a Redis per host"),
                       ("throughput", "6. requests/s and latency behind the load balancer")):
        sub.add_parser(name, help=what).add_argument("--net", default=os.environ.get("EC2_FLEET_BENCH_NET", "10.233"),
                         help="first two octets of the benchmark lab's VPC (EC2_FLEET_BENCH_NET)")
    side = sub.add_parser("classic", help="7. ec2-fleet's rolling update beside the classic Ansible one, under load")
    side.add_argument("--net", default=os.environ.get("EC2_FLEET_BENCH_NET", "10.233"),
                      help="first two octets of the benchmark lab's VPC (EC2_FLEET_BENCH_NET)")
    side.add_argument("--settings", type=lambda text: tuple(s for s in text.split(",") if s.strip()),
                      default=tuple(classic.SETTINGS), help="target group settings, in order (lab,recommended)")
    sub.add_parser("asg", help="9. Auto Scaling: bake, scale-out to the first request in parts, instance refresh "
                               "beside in place").add_argument(
        "--net", default=os.environ.get("EC2_FLEET_BENCH_NET", "10.233"),
        help="first two octets of the benchmark lab's VPC (EC2_FLEET_BENCH_NET)")
    sub.add_parser("projection", help="8. the no-op converge and the rolling update projected to 100 and 1,000 hosts "
                                      "from latest.json (no lab)")
    sub.add_parser("all", help="every benchmark, one after the other, then the projection")
    args = parser.parse_args(argv)
    net = getattr(args, "net", os.environ.get("EC2_FLEET_BENCH_NET", "10.233"))

    if args.benchmark in ("inventory", "all"):
        write_results("inventory", inventory.run(getattr(args, "instances", 1000), getattr(args, "runs", 3)))
    if args.benchmark in ("converge", "all"):
        converge.run(write_results, getattr(args, "runs", 3), getattr(args, "scale", [10, 20]),
                     getattr(args, "scale_runs", 2), net)
    for name, module in (("rolling", rolling), ("cache", cache), ("throughput", throughput)):
        if args.benchmark in (name, "all"):
            write_results(name, module.run(net))
    if args.benchmark in ("classic", "all"):
        side_by_side = classic.run(net, getattr(args, "settings", tuple(classic.SETTINGS)))
        write_results("classic", side_by_side, classic.top_level(side_by_side))
    if args.benchmark in ("asg", "all"):
        scaled = asg.run(net)
        write_results("asg", scaled, asg.top_level(scaled))
    if args.benchmark in ("projection", "all"):
        projected = projection.run()
        write_results("projection", projected, projection.top_level(projected))
    log("done: bench/results/latest.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
