#!/usr/bin/env python3
"""The lab's command line: labctl.py {up,down,status,run,fault} (see lab/README.md).

The lab is `ec2_fleet_dev.lab` (devkit/), installed into .venv by `make venv`: run this with .venv/bin/python.
"""

from ec2_fleet_dev.lab.cli import main

raise SystemExit(main())
