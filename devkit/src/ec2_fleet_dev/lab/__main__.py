"""python -m ec2_fleet_dev.lab {up,down,status,run}."""

from ec2_fleet_dev.lab.cli import main

raise SystemExit(main())
