"""python -m ec2_fleet_lab {up,down,status,run}."""

from ec2_fleet_lab.cli import main

raise SystemExit(main())
