"""The load generator's command line (tools/loadgen.py, python -m ec2_fleet_dev.loadgen)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ec2_fleet_dev.loadgen.engine import EXPECT_MODES, LoadGen
from ec2_fleet_dev.loadgen.report import summary

EPILOG = """\
with -- COMMAND: start the load, wait --warmup s, run COMMAND, keep the load --cooldown s after it
ended, stop, write the report, print a summary and exit with COMMAND's rc. Without a command the
load runs until --max-seconds, --max-requests, SIGINT or SIGTERM (all write the report).

exit status: COMMAND's rc; 3 when --max-seconds/--max-requests stopped the run before COMMAND
ended (COMMAND is then terminated); 128+N after signal N during COMMAND; 127 when COMMAND cannot
start; 2 for a bad argument (e.g. a non-loopback URL). When no COMMAND rc decides (no command, or
COMMAND exited 0), --fail-on-errors exits 1 if any request failed or was not sent; otherwise 0.

report (JSON): target, rate, started_at, duration_s, planned, sent, unsent (due while every worker
was busy: never sent), requests (answered or failed), ok, failed, unfinished, failures_by_kind
(connect_refused, connection_reset, timeout, http_5xx, http_4xx, bad_body, other), latency_ms
{p50,p95,p99,max} of ok requests, latency_by_release {release: {count,p50,p99,max}},
series (per second of sending: sent, ok, failed, unsent, p50_ms,
p99_ms, by_release, by_instance), answered_by {instance: {release: n}}, release_timeline {instance:
[{release, first_t, last_t, count}]}, the first 50 failures, command {argv, rc, started_t, ended_t},
and with --target-group-arn: target_health [{t, states, out_of_service}], max_targets_out_of_service,
target_health_errors; with --canary-target-group-arn: canary_target_health [{t, states}]; with
--alarm: alarm_states [{t, states {alarm: StateValue}}], alarm_transitions
{alarm: [{t, from, to, reason}]} (reason: the StateReason, at most 300 characters), alarm_errors.
Times t are seconds since the load started.

A URL ending in /version is read as the orders API's /version: a 2xx answer must be JSON with a
"version" (else bad_body), and its instance_id (or the X-Served-By header) says who answered. Any
other URL counts status codes: < 400 is ok; X-Served-By and X-App-Version say who answered with
which release (the /version body's version wins over the header). Only 127.0.0.0/8, ::1 and localhost are accepted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen.py",
        usage="%(prog)s --url URL --report JSON [options] [-- COMMAND ARGS...]",
        description="Steady open-loop HTTP load on one loopback URL, with a JSON report and a PNG timeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument("--url", required=True, help="the URL to GET (host must be 127.0.0.0/8, ::1 or localhost)")
    load.add_argument("--rate", type=float, default=40.0, help="requests per second, open loop (default 40)")
    load.add_argument("--timeout", type=float, default=5.0, help="socket timeout per request, seconds (default 5)")
    load.add_argument("--workers", type=int,
                      help="worker threads = most requests in flight (default: rate x (2 x timeout + 1), at most 512)")
    load.add_argument("--ca-file", type=Path, help="https: the CA (PEM) that signed the server's certificate")
    load.add_argument("--keep-alive", action="store_true", help="each worker reuses its connection (default: close)")
    load.add_argument(
        "--expect",
        choices=EXPECT_MODES,
        default="auto",
        help="version: 2xx must be /version JSON; status: count status codes; auto (default): version when the "
        "path ends in /version",
    )
    bounds = parser.add_argument_group("bounds")
    bounds.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long (default 900)")
    bounds.add_argument("--max-requests", type=int, default=100_000, help="stop after this many (default 100000)")
    bounds.add_argument("--warmup", type=float, default=2.0, help="seconds of load before COMMAND (default 2)")
    bounds.add_argument("--cooldown", type=float, default=2.0, help="seconds of load after COMMAND (default 2)")
    output = parser.add_argument_group("output")
    output.add_argument("--report", required=True, type=Path, help="write the JSON report here")
    output.add_argument("--png", type=Path, help="also draw the timeline (PNG, needs matplotlib)")
    output.add_argument("--fail-on-errors", action="store_true",
                        help="exit 1 when any request failed or was not sent (see below)")
    aws = parser.add_argument_group("target health and alarms (optional)")
    aws.add_argument("--target-group-arn", help="poll elbv2 describe_target_health of this target group")
    aws.add_argument("--canary-target-group-arn",
                     help="also poll this (a weighted canary's) target group: its state per instance and its share")
    aws.add_argument("--alarm", action="append", default=[], metavar="NAME", dest="alarms",
                     help="poll this CloudWatch alarm's state (repeatable, at most 10)")
    aws.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls (default 1)")
    aws.add_argument("--aws-url", help="elbv2/cloudwatch endpoint URL (default: env AWS_URL, then AWS_ENDPOINT_URL)")
    aws.add_argument("--region", help="AWS region (default: env AWS_REGION, then us-east-1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    separator = "--" in argv
    if separator:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if separator and not command:
        parser.error("nothing after --: give the command to run")
    try:
        load = LoadGen(
            args.url,
            rate=args.rate,
            timeout=args.timeout,
            target_group_arn=args.target_group_arn,
            aws_url=args.aws_url,
            region=args.region,
            poll_interval=args.poll_interval,
            max_seconds=args.max_seconds,
            max_requests=args.max_requests,
            workers=args.workers,
            expect=args.expect,
            ca_file=args.ca_file,
            keep_alive=args.keep_alive,
            alarm_names=args.alarms,
            canary_target_group_arn=args.canary_target_group_arn,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.warmup < 0 or args.cooldown < 0:
        parser.error("--warmup and --cooldown must be >= 0")
    for path in (args.report, args.png):
        if path is not None and not path.resolve().parent.is_dir():
            parser.error(f"no such directory for {path}")

    def on_signal(signum: int, _frame: object) -> None:
        load.interrupt(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        load.start()
        if command:
            rc = load.run_command(command, warmup=args.warmup, cooldown=args.cooldown)
        else:
            while not load.stopped.wait(0.5):
                pass
            rc = 0
        report = load.stop(load.stop_reason or "stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rc == 0 and args.fail_on_errors and (report["failed"] or report["unsent"]):
        rc = 1
    load.write(args.report, args.png)
    print(summary(report) + f" Report: {args.report}" + (f", timeline: {args.png}" if args.png else "") + f"; rc {rc}.")
    return rc


if __name__ == "__main__":
    sys.exit(main())
