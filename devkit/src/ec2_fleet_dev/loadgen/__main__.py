"""python -m ec2_fleet_dev.loadgen --url URL --report JSON [options] [-- COMMAND ARGS...]."""

import sys

from ec2_fleet_dev.loadgen.cli import main

sys.exit(main())
