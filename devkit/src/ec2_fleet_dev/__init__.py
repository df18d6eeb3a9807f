"""ec2-fleet's development kit: what tests, benchmarks and tools share (never installed on a fleet host).

- `ec2_fleet_dev.lab`: the local AWS lab (moto, podman containers as instances, HAProxy as the ALB);
  `lab/labctl.py` is its command line.
- `ec2_fleet_dev.loadgen`: the open-loop load generator (engine, target-health poller, report, plot);
  `tools/loadgen.py` is its command line.
- `ec2_fleet_dev.plays`: run playbooks and read their results (recap, failure messages).
- `ec2_fleet_dev.labs`, `ec2_fleet_dev.lbhttp`, `ec2_fleet_dev.moto_aws`: a private lab's environment and
  handle, HTTP(S) through its load balancer, moto resets and resource snapshots.
- `ec2_fleet_dev.bench`: the benchmarks; `bench/run.py` is their command line.

It is installed editable (`make venv`): `ROOT` is the checkout it was installed from.
"""
