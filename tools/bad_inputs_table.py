#!/usr/bin/env python3
"""Run every bad-input test and write docs/bad-inputs.md: each case, where it is refused, and the message.

    .venv/bin/python tools/bad_inputs_table.py            # runs the tests (about 6 min), writes the table
    .venv/bin/python tools/bad_inputs_table.py --no-run   # rewrites the table from the last run's log

The messages are the real ones: a pytest plugin (`-p ec2_fleet_dev.bad_inputs`) that, while the
tests run, writes down every ansible-playbook run they make (its playbook or role, its extra vars, its exit
code, the "msg" of each failed task and the changed count of its recap) and every fail_json of a module the
tests run in-process. A case is a run that failed; the table lists them all, in test order.
Runs that share one pytest node (cases run in a thread pool by a fixture) name their case with the
environment variable EC2_FLEET_TEST_CASE.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ec2_fleet_dev.bad_inputs import LOG_ENV
from ec2_fleet_dev.plays import ROOT

DEFAULT_LOG = ROOT / ".cache" / "bad-inputs.jsonl"
OUTPUT = ROOT / "docs" / "bad-inputs.md"

# Every test that tries bad input, with what it checks. (The molecule scenarios try no bad input: their
# verify steps check the hosts' behaviour, e.g. that password and root SSH logins are refused.)
SUITES = [
    ("tests/test_bad_inputs_base.py", "role base (on a test host)"),
    ("tests/test_bad_inputs_runtime.py", "role runtime (on a test host)"),
    ("tests/test_bad_inputs_supervisor.py", "role supervisor (on a test host)"),
    ("tests/test_bad_inputs_app.py", "role app (on a test host)"),
    ("tests/test_bad_inputs_cloudwatch_agent.py", "role cloudwatch_agent (on a test host)"),
    ("tests/test_bad_inputs_rolling.py", "rolling_update.yml / rollback.yml (lab inventory, dead AWS endpoint)"),
    ("tests/test_bad_inputs_playbooks.py", "playbooks: extra vars, inventory, files, credentials, endpoint"),
    ("tests/aws/test_bad_inputs.py", "provision.yml against moto (lab inventory)"),
    ("tests/aws/test_bad_database_url.py", "site.yml / provision.yml: the database URL (against moto)"),
    (
        "tests/aws/test_rolling_alarms.py::test_an_alarm_that_does_not_exist_is_refused_before_the_lock",
        "rolling_update.yml: rolling_alarms names an alarm that does not exist (against moto)",
    ),
    (
        "tests/aws/test_rolling_alarms.py::test_bad_alarm_settings_are_refused_before_any_aws_call",
        "rolling_update.yml: rolling_alarms settings (against moto)",
    ),
    (
        "tests/aws/test_frontend.py::test_bad_inputs_refused_before_any_change",
        "frontend.yml against moto (lab inventory)",
    ),
    (
        "tests/unit/aws_cache/test_aws_cache_role.py::test_bad_input_fails_before_any_aws_call",
        "role aws_cache (dead AWS endpoint)",
    ),
    (
        "tests/unit/aws_cache/test_elasticache_replication_group.py",
        "module ec2_fleet.fleet.aws_cache_replication_group (in-process)",
    ),
]
# Module tests of the list above that try bad input (the others create, modify and delete).
MODULE_FILTER = "bad_options or unreachable or missing_subnet or fixed_at_creation"
# Parameters of a test that hold the expected message, not the input.
EXPECTATION_PARAMS = {"message", "expected", "phrase", "index"}


# --- the table ----------------------------------------------------------------------------------------


def _cell(text: str, limit: int = 260) -> str:
    # Ports of throw-away servers change with every run.
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", re.sub(r"\s+", " ", text).strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _value(value: Any) -> str:
    return json.dumps(value, default=repr, separators=(", ", ": "))


def _input(record: dict[str, Any]) -> str:
    """What was bad, from the test's parameters (or the case name of a pooled run)."""
    if record["case"]:
        # A case name that does not show the value itself comes with the run's extra vars.
        shown = {k: v for k, v in record["extra"].items() if k != "aws_instances_public_key_file" or v}
        return record["case"] if "=" in record["case"] or not shown else f"{record['case']}: -e {_value(shown)}"
    params = {k: v for k, v in record["params"].items() if k not in EXPECTATION_PARAMS}
    if {"variable", "value"} <= params.keys():
        return f"{params['variable']}={_value(params['value'])}"
    if {"option", "value"} <= params.keys():
        return f"{params['option']}={_value(params['value'])}"
    for key in ("variables", "role_vars", "extra", "overrides"):
        if key in params:
            return _value(params[key])
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items()) or record["nodeid"].split("::")[-1]


def _suite(nodeid: str) -> str:
    for prefix, name in SUITES:
        if nodeid.startswith(prefix.split("::")[0]):
            return name
    return nodeid.split("::")[0]


def _where(record: dict[str, Any]) -> str:
    if record["kind"] == "module":
        return "module ec2_fleet.fleet.aws_cache_replication_group"
    return record["target"]


def build_table(records: list[dict[str, Any]], run_summary: str) -> tuple[str, int]:
    # A failing test's runs did not do what the test expects: they are no evidence, leave them out.
    failed = sorted({r["nodeid"] for r in records if r["kind"] == "failed test"})
    cases = [r for r in records if r["kind"] != "failed test" and r["rc"] != 0 and r["nodeid"] not in failed]
    order = {prefix.split("::")[0]: i for i, (prefix, _) in enumerate(SUITES)}
    # Deterministic: by suite, then test, then case (pooled runs finish in any order).
    cases.sort(key=lambda r: (order.get(r["nodeid"].split("::")[0], len(order)), r["nodeid"], r["case"]))
    counts: dict[str, int] = {}
    for record in cases:
        counts[_suite(record["nodeid"])] = counts.get(_suite(record["nodeid"]), 0) + 1
    plays = [r for r in cases if r["kind"] == "playbook"]
    unchanged = sum(1 for r in plays if r["changed"] == 0)
    named = sum(1 for r in cases if any(m.strip() for m in r["messages"]))
    lines = [
        "# Bad inputs and the errors they give",
        "",
        "Every bad input the tests try, the playbook, role or module that refuses it, and the message the",
        "operator sees: the `msg` of the failed task (or of the module), copied from a real run by",
        "`tools/bad_inputs_table.py`, which runs the tests below and writes this file. Do not edit it by hand:",
        "run `.venv/bin/python tools/bad_inputs_table.py` again after changing a test or a message.",
        "",
        f"**{len(cases)} cases**: {len(plays)} ansible-playbook runs and {len(cases) - len(plays)} in-process runs"
        f" of the cache module. {unchanged} of the {len(plays)} runs report `changed=0` in their recap;"
        f" {named} of the {len(cases)} cases end with a message. Last run: {run_summary}.",
        *(
            [
                "",
                f"{len(failed)} test(s) failed in that run; their runs are not in the table: "
                + ", ".join(f"`{n}`" for n in failed)
                + ".",
            ]
            if failed
            else []
        ),
        "",
        "| tests | cases |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in counts.items()],
        "",
        "The molecule scenarios try no bad input of their own (their verify steps check the hosts' behaviour).",
        "`changed` is the sum of `changed=` in the run's PLAY RECAP (`-`: a module run, no play).",
        "",
        "| # | test | bad input | refused by | changed | message |",
        "|---|---|---|---|---|---|",
    ]
    for n, record in enumerate(cases, start=1):
        test = record["nodeid"].split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        changed = "-" if record["changed"] is None else str(record["changed"])
        message = " / ".join(m for m in record["messages"] if m.strip()) or "(no message)"
        lines.append(
            f"| {n} | {test} | `{_cell(_input(record), 160)}` | {_cell(_where(record), 60)} | {changed} |"
            f" {_cell(message)} |"
        )
    return "\n".join(lines) + "\n", len(cases)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="reuse the log of the last run")
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    summary_file = args.log.with_suffix(".summary")
    if not args.no_run:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text("")
        selection = [s.split("::")[0] if "::" not in s else s for s, _ in SUITES]
        cmd = [sys.executable, "-m", "pytest", "-p", "ec2_fleet_dev.bad_inputs", "-q", "-p", "no:cacheprovider"]
        cmd += [*selection, "-k", f"not test_elasticache_replication_group or {MODULE_FILTER}"]
        env = {**os.environ, LOG_ENV: str(args.log)}
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        outcome = (proc.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
        summary_file.write_text(f"pytest {outcome} ({time.monotonic() - started:.0f} s wall clock)")
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-2000:])
            sys.stderr.write("some tests failed: the table leaves their runs out and says which\n")
    records = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    table, count = build_table(records, summary_file.read_text() if summary_file.exists() else "unknown")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(f"{args.output}: {count} cases")
    return 0 if args.no_run or proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
