"""The load generator: steady open-loop HTTP load on one loopback URL, a JSON report and a PNG timeline.

    with LoadGen("https://127.0.0.1:8443/version", rate=40, timeout=5, ca_file=ca) as load:
        ...                      # run something
    load.report                  # the report (dict), built when the block ends
    load.write("out.json", "out.png")

engine (the load), poller (the target group's health and CloudWatch alarms beside it), report (what a client saw),
plot (the PNG timeline), cli (tools/loadgen.py).
"""

from ec2_fleet_dev.loadgen.engine import EXIT_BOUND, LoadGen, TargetRefused, check_url, classify_exception
from ec2_fleet_dev.loadgen.report import FAILURE_KINDS, delivery, percentile, summary, write_report

__all__ = ["EXIT_BOUND", "FAILURE_KINDS", "LoadGen", "TargetRefused", "check_url", "classify_exception", "delivery",
           "percentile", "summary", "write_report"]
