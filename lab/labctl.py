#!/usr/bin/env python3
"""The lab's command line: labctl.py {up,down,status,run} (see lab/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ec2_fleet_lab.cli import main

raise SystemExit(main())
