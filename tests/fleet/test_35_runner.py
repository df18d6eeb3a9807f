"""The rolling update as AWX runs it: ansible-runner with a private data dir, under load, and the deploy lock
between two jobs started at once.

Each job gets what AWX's job template gives it: a private data dir with env/extravars (the template's extra
vars and survey answers, and the SSH key file its credential injects), env/envvars (what its AWS credential
injects, here the lab's endpoint and keys), env/settings, inventory/ (the lab's aws_ec2 inventory source
with its group_vars) and project/ (a copy of the checkout, as AWX copies the project's revision into each
job). ansible-runner runs `playbooks/rolling_update.yml` from project/, so the project's own ansible.cfg
applies, as in AWX; nothing of the test's environment points Ansible at the checkout. The releases are
those test_30 built (the session's artifact cache): no build here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_30_rolling import RATE, assert_no_failed_requests, aws, play_under_load, statuses

from ec2_fleet_dev.lbhttp import http
from ec2_fleet_dev.plays import ROOT, PlayResult

pytestmark = pytest.mark.fleet

RUNNER = Path(sys.executable).parent / "ansible-runner"
# Releases already in the session's artifact cache (site.yml built 1.0.0, test_30 2.0.0 and 3.0.0).
RELEASES = ("1.0.0", "2.0.0", "3.0.0")
LOCK = "/ec2-fleet/lab/deploy/lock"
# Not part of a project revision: caches, virtualenvs, build output.
NOT_IN_PROJECT = shutil.ignore_patterns(".git", ".venv", ".cache", ".ansible", ".pytest_cache", ".ruff_cache",
                                        "__pycache__", "*.pyc", "node_modules", "dist", "build", "artifacts")


@dataclass
class Job:
    """One ansible-runner run: its status file, rc and stdout from the artifacts folder."""

    ident: str
    status: str
    result: PlayResult
    seconds: float


@dataclass
class Runner:
    """The session's fleet, with play() running each playbook as an AWX job: ansible-runner, its own private data dir.

    It stands in for the fleet in test_30's play_under_load (same endpoints, state dir and AWS endpoint).
    """

    fleet: object
    base: Path
    jobs: list[Job] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.fleet.env

    @property
    def endpoints(self) -> dict:
        return self.fleet.endpoints

    @property
    def state_dir(self) -> Path:
        return self.fleet.state_dir

    def prepare(self, ident: str, extravars: dict) -> Path:
        """The private data dir of one job, laid out as AWX writes it."""
        data = self.base / ident
        (data / "env").mkdir(parents=True)
        shutil.copytree(ROOT, data / "project", symlinks=True, ignore=NOT_IN_PROJECT)
        # The inventory source with the variables that come with it (the shared ones resolved, as AWX
        # imports them): no link back into the checkout.
        shutil.copytree(ROOT / "inventories" / "lab", data / "inventory", symlinks=False)
        # The SSH key as docs/awx.md's credential type injects it: a file in the job's private data dir named by
        # ansible_ssh_private_key_file (ansible.cfg's IdentitiesOnly=yes ignores keys held only by an agent).
        key = data / "env" / "credential_ssh_key"
        shutil.copy(Path(self.env["EC2_FLEET_LAB_STATE_DIR"]) / "ssh" / "id_ed25519", key)
        key.chmod(0o600)
        extra = {"app_artifact_cache_dir": str(self.state_dir / "artifacts"), "ansible_ssh_private_key_file": str(key),
                 **extravars}
        (data / "env" / "extravars").write_text(json.dumps(extra))
        lab = {k: v for k, v in self.env.items() if k.startswith("EC2_FLEET_LAB_")}
        (data / "env" / "envvars").write_text(json.dumps({
            **lab, "AWS_URL": self.env["AWS_URL"], "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "ANSIBLE_NOCOLOR": "1"}))
        (data / "env" / "settings").write_text(json.dumps({"job_timeout": 1200}))
        return data

    def start(self, ident: str, playbook: str, extravars: dict) -> tuple[subprocess.Popen, Path, float]:
        data = self.prepare(ident, extravars)
        # Only what a fresh AWX worker has: no ANSIBLE_* (ansible.cfg is the project's), no lab or AWS settings
        # but those the job's own envvars give.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANSIBLE_", "AWS_", "EC2_FLEET_")) and k != "PYTHONPATH"}
        env["PATH"] = f"{RUNNER.parent}:{env.get('PATH', '')}"
        proc = subprocess.Popen([str(RUNNER), "run", str(data), "-p", f"playbooks/{playbook}.yml", "--ident", ident,
                                 "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return proc, data, time.time()

    def finish(self, ident: str, started: tuple[subprocess.Popen, Path, float]) -> Job:
        proc, data, since = started
        try:
            said, _ = proc.communicate(timeout=1500)
        finally:
            if proc.poll() is None:
                proc.kill()
        artifacts = data / "artifacts" / ident
        assert (artifacts / "status").is_file(), f"ansible-runner wrote no status (rc {proc.returncode}): {said}"
        job = Job(ident, (artifacts / "status").read_text().strip(),
                  PlayResult(int((artifacts / "rc").read_text()), (artifacts / "stdout").read_text()),
                  # when ansible-runner wrote the job's rc, not when this (sequential) wait returned
                  (artifacts / "rc").stat().st_mtime - since)
        self.jobs.append(job)
        return job

    def play(self, name: str, *args: str, extra: dict | None = None) -> PlayResult:
        assert not args, "a job template's options go in its settings, not on a command line"
        ident = f"{len(self.jobs) + 1:02d}-{name}"
        return self.finish(ident, self.start(ident, name, extra or {})).result


@pytest.fixture(scope="module")
def runner(converged, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(converged, tmp_path_factory.mktemp("awx-jobs"))


def releases_served(fleet) -> dict[str, str]:
    """instance id -> the release it answers /version with, through the load balancer (a bounded loop)."""
    served: dict[str, str] = {}
    for _ in range(60):
        status, _, body = http(fleet.endpoints["lb_url"] + "/version")
        if status == 200:
            served[body["instance_id"]] = body["version"]
    return served


def hosts_out_at_most(report: dict, instances) -> int:
    """The most of these instances that the load balancer had out of service (not `healthy`) at one sample."""
    return max(sum(sample["states"].get(i) != "healthy" for i in instances) for sample in report["target_health"])


def audit_record(result: PlayResult) -> dict:
    return json.loads(Path(re.search(r"record (\S+\.json)\)", result.output).group(1)).read_text())


def assert_lock_released(fleet) -> None:
    ssm = aws(fleet, "ssm")
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=LOCK)


def assert_fleet_on(runner: Runner, version: str, hosts: int, run_id: str) -> None:
    """verify.yml, as a job too: every host on the release, ready and healthy; the last run recorded."""
    # /ready can read "degraded" for a few seconds after a restart: a bounded number of audits.
    for _ in range(3):
        verify = runner.play("verify", extra={"app_version": version})
        if verify.rc == 0:
            break
        time.sleep(5)
    assert verify.rc == 0 and runner.jobs[-1].status == "successful", verify.tail()
    assert f"{hosts} host(s) on {version}, ready, healthy in the target group" in verify.output
    assert f"Last rolling run: {run_id} deploy {version}" in verify.output


def test_rolling_update_as_an_awx_job_under_load_drops_no_request(runner: Runner):
    before = releases_served(runner)
    version = next(v for v in RELEASES if v not in before.values())
    result, report = play_under_load(runner, "runner-update", "rolling_update", {"app_version": version})
    job = runner.jobs[-1]
    assert (job.status, result.rc) == ("successful", 0), result.tail()
    # The same outcome as from the command line: every host updated in the run's summary, no request lost.
    summary = statuses(result)
    assert set(summary.values()) == {"updated"} and len(summary) == len(before), (summary, before)
    assert {host.rsplit("-i-", 1)[1] for host in summary} == {i.removeprefix("i-") for i in before}, summary
    assert_no_failed_requests(report)
    # One host of the fleet out of the load balancer at a time (test_30 leaves the target of the host it
    # killed behind, which the poller's own count includes).
    assert hosts_out_at_most(report, before) == 1, report["target_health"][-3:]
    record = audit_record(result)
    assert record["result"] == "succeeded" and record["version"] == version and record["who"]
    assert {h["from"] for h in record["hosts"]} == set(before.values())
    assert {h["to"] for h in record["hosts"]} == {version}
    assert_lock_released(runner)
    print(f"\nFIGURE ansible-runner job (private data dir, as AWX): rolling_update.yml "
          f"{' and '.join(sorted(set(before.values())))} -> {version} on {len(summary)} hosts in {job.seconds:.0f} s; "
          f"{report['requests']} requests at {RATE}/s over HTTPS, {report['failed']} failed, "
          f"{report['planned'] - report['sent']} not sent")
    assert_fleet_on(runner, version, len(before), record["run_id"])


def test_two_jobs_at_once_one_deploys_the_other_is_refused_by_the_lock(runner: Runner):
    before = releases_served(runner)
    first, second = (v for v in RELEASES if v not in before.values())
    extra = {"rolling_audit_dir": str(runner.state_dir / "audit")}
    started = {v: runner.start(f"race-{v}", "rolling_update", {**extra, "app_version": v}) for v in (first, second)}
    jobs = {v: runner.finish(f"race-{v}", s) for v, s in started.items()}
    won = [v for v, job in jobs.items() if job.status == "successful"]
    assert len(won) == 1, {v: (job.status, job.result.tail(1500)) for v, job in jobs.items()}
    winner, loser = won[0], next(v for v in jobs if v not in won)
    refused = jobs[loser]
    assert refused.status == "failed" and refused.result.rc != 0
    record = audit_record(jobs[winner].result)
    # The refused job names the holder: the winner's run, what it does, who, since when; and touched nothing.
    assert (f"holds the deploy lock {LOCK}: run {record['run_id']} (deploy {winner}) by {record['who']} "
            f"since {record['started']}") in refused.result.output, refused.result.tail()
    assert "Roll the release through the fleet" not in refused.result.output
    assert set(statuses(jobs[winner].result).values()) == {"updated"}
    assert_lock_released(runner)
    print(f"\nFIGURE two ansible-runner jobs at once ({first}, {second}): {winner} deployed in "
          f"{jobs[winner].seconds:.0f} s, {loser} refused by the deploy lock after {refused.seconds:.0f} s")
    assert_fleet_on(runner, winner, len(before), record["run_id"])
