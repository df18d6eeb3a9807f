#!/usr/bin/env python3
"""Steady open-loop HTTP load on one loopback URL, with a JSON report and a PNG timeline (--help; tools/README.md).

    tools/loadgen.py --url http://127.0.0.1:8080/version --rate 40 --report out.json --png out.png \\
        -- ansible-playbook playbooks/rolling_update.yml -e app_version=2.0.0

The load generator is `ec2_fleet_dev.loadgen` (devkit/), installed into .venv by `make venv`.
"""

import sys

from ec2_fleet_dev.loadgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
