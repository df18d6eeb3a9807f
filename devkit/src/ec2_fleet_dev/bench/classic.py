"""Benchmark 7: ec2-fleet's rolling update side by side with the classic Ansible rolling update, under load.

One private lab, converged once (provision.yml, site.yml: release 1.0.0). Then, while the load generator sends
30 requests/s through the lab's HTTPS load balancer (keep-alive, verified with the lab CA) and polls the target
group's health, three forms of a 3-host rolling update, one host at a time, each to a release no host has yet
(so every run deploys; each release is built beforehand, outside the timed runs):

- ec2-fleet: playbooks/rolling_update.yml (the rolling role: stage while serving, drain, switch, register);
- careful classic: bench/classic_rolling.yml (`serial: 1`; `elb_target` absent waiting for `unused`; the app
  role; `elb_target` present waiting for `healthy`);
- short classic: bench/classic_rolling_short.yml (a fixed `pause` instead of the drain wait, `wait_for` the
  app's port instead of the target's health);

first with the lab's target group settings, then with the project's recommended ones (provision.yml changes the
same target group in place). Per run: the wall time of the ansible-playbook process (and per host), the
requests that failed (by kind) or were never sent, and how the run left the fleet: targets healthy and hosts
answering the new release right when the playbook ended, and how long until every target was healthy. Between
two runs the fleet is put back in order (site.yml with the release of the run) when a run left it otherwise.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import boto3

from ec2_fleet_dev.bench import rolling
from ec2_fleet_dev.bench.benchlib import Lab, Timed, log, machine, median, private_lab, read_results, timed
from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.loadgen import LoadGen
from ec2_fleet_dev.paths import ROOT

HOSTS = 3
RATE = 30
TARGET_RATIO = 0.6
TG_NAME = "ec2-fleet-lab-tg"
APP = "orders-api"
APP_PORT = 8000
SETTLE_S = 120  # at most this long after a run for every target to turn healthy (the load keeps running)
SHORT_PAUSE_S = 10  # bench/classic_rolling_short.yml's fixed pause (its play default)

FORMS = {
    "ec2-fleet": "playbooks/rolling_update.yml",
    "careful classic": "bench/classic_rolling.yml",
    "short classic": "bench/classic_rolling_short.yml",
}
SETTINGS = {"lab": rolling.LAB, "recommended": rolling.RECOMMENDED}
COMMAND = "EC2_FLEET_BENCH_NET=10.247 .venv/bin/python bench/run.py classic"


# -- the lab ----------------------------------------------------------------------------------------


def _aws(lab: Lab, service: str):
    return boto3.client(service, endpoint_url=lab.env["AWS_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def target_states(lab: Lab, arn: str) -> dict[str, str]:
    """instance id -> the target group's view of it (healthy, initial, draining, unused, ...)."""
    found = _aws(lab, "elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}


def host_ips(lab: Lab) -> dict[str, str]:
    """instance id -> private IP of the running app hosts (tag Role=web: not the bastion)."""
    found = _aws(lab, "ec2").describe_instances(Filters=[
        {"Name": "tag:Role", "Values": ["web"]}, {"Name": "instance-state-name", "Values": ["running"]}])
    return {i["InstanceId"]: i["PrivateIpAddress"] for r in found["Reservations"] for i in r["Instances"]}


def releases_served(ips: dict[str, str], asks: int = 6) -> dict[str, list[str]]:
    """instance id -> the releases its app answers on /version, asked straight on the host's port (a new
    connection each, so both of its processes answer), not through the balancer."""
    found: dict[str, list[str]] = {}
    for iid, ip in sorted(ips.items()):
        seen = set()
        for _ in range(asks):
            conn = http.client.HTTPConnection(ip, APP_PORT, timeout=5)
            try:
                conn.request("GET", "/version", headers={"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read()
                seen.add(json.loads(body)["version"] if resp.status == 200 else f"HTTP {resp.status}")
            except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
                seen.add(type(exc).__name__)
            finally:
                conn.close()
        found[iid] = sorted(seen)
    return found


def prebuild(lab: Lab, version: str) -> None:
    """Build the release's artifact as the app role would (same script, same target), before the timed runs:
    no form pays for a build in its figures."""
    cache = Path(lab.extra["app_artifact_cache_dir"]) / APP
    first = next(cache.glob("1.0.0/*.tar.gz"), None)
    match = re.search(r"-py([0-9.]+)-([a-z0-9_]+)-glibc([0-9.]+)\.tar\.gz$", first.name if first else "")
    if not match:
        raise RuntimeError(f"no python artifact of 1.0.0 in {cache} to take the hosts' target from")
    python, arch, glibc = match.groups()
    output = cache / version / f"{APP}-{version}-py{python}-{arch}-glibc{glibc}.tar.gz"
    if output.exists():
        return
    done = subprocess.run(
        [sys.executable, str(ROOT / "roles/app/files/build-artifact.py"), "--kind=python", f"--name={APP}",
         f"--version={version}", f"--source={ROOT / 'app'}", f"--output={output}", f"--python-version={python}",
         f"--arch={arch}", f"--glibc={glibc}"],
        cwd=ROOT, env=lab.env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"building {version} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def play(lab: Lab, path: str, extra: dict, *args: str) -> Timed:
    cmd = ["ansible-playbook", "-i", "inventories/lab", path, *args, "-e", json.dumps({**lab.extra, **extra})]
    return timed(cmd, lab.env, timeout=1800)


def wait_all_healthy(lab: Lab, arn: str, timeout: float) -> float | None:
    """Seconds until every one of the HOSTS targets is healthy (None: not within timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        states = target_states(lab, arn)
        if len(states) == HOSTS and set(states.values()) == {"healthy"}:
            return round(time.monotonic() - start, 1)
        time.sleep(1)
    return None


# -- one run ----------------------------------------------------------------------------------------


def one_run(lab: Lab, endpoints: dict, arn: str, form: str, settings: str, version: str) -> dict:
    prebuild(lab, version)
    extra = {"app_version": version}
    if form == "ec2-fleet":
        extra["rolling_audit_dir"] = str(lab.state_dir / "audit" / f"{settings}-{version}")
    with LoadGen(endpoints["lb_url"] + "/version", rate=RATE, timeout=5, target_group_arn=arn,
                 aws_url=lab.env["AWS_URL"], max_seconds=1500, ca_file=endpoints["lb_ca_file"],
                 keep_alive=True) as load:
        time.sleep(2)  # a steady state before the play starts
        t = play(lab, FORMS[form], extra)
        at_end = target_states(lab, arn)
        served = releases_served(host_ips(lab))
        settle = wait_all_healthy(lab, arn, SETTLE_S)
        time.sleep(2)
    report = load.report
    restored = ""
    if t.rc != 0 or settle is None or any(r != [version] for r in served.values()):
        # Back in order for the next run: every host on the release and healthy in the target group.
        fix = play(lab, "playbooks/site.yml", extra)
        restored = f"site.yml rc {fix.rc}"
        if fix.rc != 0 or wait_all_healthy(lab, arn, SETTLE_S) is None:
            raise RuntimeError(f"{form} at {settings} settings left the fleet out of order and site.yml did not "
                               f"restore it (rc {fix.rc}):\n{fix.output[-3000:]}")
    row = summarise(form, settings, version, t, report, at_end, served, settle, restored)
    log(f"classic: {form} at {settings} settings to {version}: {row['wall_s']} s ({row['per_host_s']} s a host), "
        f"rc {t.rc}, {row['failed']} failed {row['failures_by_kind']}, {row['unsent']} unsent; at the end "
        f"{row['healthy_at_end']}/{HOSTS} healthy, {row['on_release_at_end']}/{HOSTS} on {version}; "
        f"all healthy {settle} s later{'; ' + restored if restored else ''}")
    if t.rc != 0:
        row["error_tail"] = t.output[-1500:]
    return row


def summarise(form: str, settings: str, version: str, t: Timed, report: dict, at_end: dict[str, str],
              served: dict[str, list[str]], settle: float | None, restored: str) -> dict:
    """One run's figures (pure: the unit tests build it from a made-up run)."""
    health = report.get("target_health", [])
    fewest_healthy = min((sum(1 for s in sample["states"].values() if s == "healthy") for sample in health),
                         default=None)
    return {
        "form": form, "settings": settings, "version": version, "rc": t.rc, "wall_s": t.wall,
        "per_host_s": round(t.wall / HOSTS, 1), "load": t.load, "controller_cpu_s": t.cpu,
        "requests": report["requests"], "failed": report["failed"],
        "failures_by_kind": {k: n for k, n in report["failures_by_kind"].items() if n},
        "unsent": report["unsent"], "unfinished": report["unfinished"],
        "first_failures": report.get("failures", [])[:5],
        "max_out_of_service": report.get("max_targets_out_of_service"), "fewest_healthy": fewest_healthy,
        "healthy_at_end": sum(1 for s in at_end.values() if s == "healthy"), "states_at_end": at_end,
        "on_release_at_end": sum(1 for r in served.values() if r == [version]), "served_at_end": served,
        "all_healthy_after_s": settle, "restored": restored,
    }


def clean(row: dict) -> bool:
    """The run did its job: succeeded, no request failed or went unsent, every host on the release and in
    service when the playbook ended."""
    return (row["rc"] == 0 and row["failed"] == 0 and row["unsent"] == 0
            and row["healthy_at_end"] == HOSTS and row["on_release_at_end"] == HOSTS)


def find(rows: list[dict], form: str, settings: str) -> dict | None:
    return next((r for r in rows if r["form"] == form and r["settings"] == settings), None)


def ratio(rows: list[dict], settings: str = "lab") -> float | None:
    """ec2-fleet's time per host over the careful classic's, at these settings (None when one is missing)."""
    ours, careful = find(rows, "ec2-fleet", settings), find(rows, "careful classic", settings)
    if not ours or not careful or not careful["per_host_s"]:
        return None
    return round(ours["per_host_s"] / careful["per_host_s"], 2)


# -- the whole benchmark -----------------------------------------------------------------------------


def run(net: str = "10.233", settings: tuple[str, ...] = ("lab", "recommended")) -> dict:
    unknown = [label for label in settings if label not in SETTINGS]
    if unknown or not settings:
        raise ValueError(f"settings must be some of {', '.join(SETTINGS)}, not {', '.join(unknown) or 'none'}")
    rows: list[dict] = []
    with private_lab(net) as lab:
        # The lab's HTTPS listener, as the rolling tests use it (benchlib's labs default to plain HTTP).
        lab.extra.pop("aws_alb_allow_http_only", None)
        lab.extra.pop("aws_alb_certificate_ssm_parameter", None)
        endpoints = json.loads((Path(lab.env["EC2_FLEET_LAB_STATE_DIR"]) / "endpoints.json").read_text())
        for name in ("provision", "site"):
            t = play(lab, f"playbooks/{name}.yml", {}).checked(f"{name}.yml")
            log(f"classic: {name}.yml {t.wall} s")
        arn = _aws(lab, "elbv2").describe_target_groups(Names=[TG_NAME])["TargetGroups"][0]["TargetGroupArn"]
        if wait_all_healthy(lab, arn, SETTLE_S) is None:
            raise RuntimeError(f"after site.yml not every target is healthy: {target_states(lab, arn)}")
        major = 1
        for label in settings:
            if label != "lab":
                lab.extra.update(rolling._settings_vars(SETTINGS[label]))
                play(lab, "playbooks/provision.yml", {}).checked(f"provision.yml ({label} target group settings)")
            for form in FORMS:
                major += 1
                rows.append(one_run(lab, endpoints, arn, form, label, f"{major}.0.0"))
    return result(rows, net)


def _kinds(row: dict) -> str:
    return ", ".join(f"{k} {n}" for k, n in row["failures_by_kind"].items()) or "-"


def failures_of(row: dict) -> str:
    """What a run got wrong, in a reader's words ("-" for a clean run)."""
    found = []
    if row["rc"] != 0:
        found.append(f"the playbook failed (rc {row['rc']})")
    if row["failed"]:
        found.append(f"{row['failed']} requests failed ({_kinds(row)})")
    if row["unsent"]:
        found.append(f"{row['unsent']} requests not sent")
    if row["healthy_at_end"] < HOSTS:
        left = {i: s for i, s in row["states_at_end"].items() if s != "healthy"}
        gone = HOSTS - len(row["states_at_end"])
        found.append(f"ended with {row['healthy_at_end']} of {HOSTS} targets healthy ("
                     + ", ".join(f"{i} {s}" for i, s in sorted(left.items()))
                     + (f"{', ' if left else ''}{gone} not registered" if gone > 0 else "") + ")")
        if gone > 0 and row["rc"] == 0:
            found.append("the playbook succeeded all the same: community.aws.elb_target state=present registers "
                         "nothing while the target is still draining (its reason is not Target.NotRegistered), so a "
                         "pause shorter than the deregistration delay plus the deploy leaves the host out for good")
    if row["on_release_at_end"] < HOSTS:
        found.append(f"ended with {row['on_release_at_end']} of {HOSTS} hosts on {row['version']}")
    if row["all_healthy_after_s"] is None:
        found.append(f"not every target healthy {SETTLE_S} s after the end: put back by {row['restored']}")
    elif row["all_healthy_after_s"] > 0:
        found.append(f"every target healthy only {row['all_healthy_after_s']} s after the end")
    return "; ".join(found) or "-"


def table_rows(rows: list[dict]) -> list[list]:
    return [[r["settings"], r["form"], r["wall_s"], r["per_host_s"], r["failed"], _kinds(r), r["unsent"],
             r["max_out_of_service"], r["fewest_healthy"],
             f"{r['healthy_at_end']}/{HOSTS} healthy, {r['on_release_at_end']}/{HOSTS} on {r['version']}",
             "-" if r["all_healthy_after_s"] is None else r["all_healthy_after_s"], r["load"]] for r in rows]


def floor_note(careful_per_host_s: float, app_start_s: float = 0.0, registration_delay_s: float | None = None) -> str:
    """What one host at a time cannot go below at the lab's settings, beside 0.6 of the careful classic.

    app_start_s: the app's measured start (benchmark 3), 0 when not measured."""
    delay = LabConfig().registration_delay if registration_delay_s is None else registration_delay_s
    waits = rolling._waits(rolling.LAB, app_start_s, delay)
    goal = round(TARGET_RATIO * careful_per_host_s, 1)
    start = f" + the app's start {app_start_s:g} s (benchmark 3)" if app_start_s else " (before the app's own start)"
    return (f"The waits one host at a time cannot avoid at the lab's settings: {waits['total_s']} s per host (drain "
            f"{waits['drain_s']} s + registration delay {delay:g} s + checks {waits['register_s'] - delay:g} s"
            f"{start}); "
            f"{TARGET_RATIO} x the careful classic is {goal} s per host"
            + (", below them: no form that takes each host out of the load balancer can meet it."
               if goal < waits["total_s"] else "."))


def measured_app_start() -> float:
    """The app's start measured by benchmark 3 (bench/results/latest.json), 0 when it has not run."""
    figures = read_results().get("benchmarks", {}).get("rolling", {}).get("figures", {})
    starts = figures.get("app_start_s") or []
    return median(starts) if starts else 0.0


def result(rows: list[dict], net: str) -> dict:
    lab_ratio = ratio(rows, "lab")
    ours = find(rows, "ec2-fleet", "lab")
    ours_clean = bool(ours) and clean(ours)
    careful = find(rows, "careful classic", "lab")
    notes = []
    for r in rows:
        notes.append(f"{r['form']} at the {r['settings']} settings ({r['version']}): {failures_of(r)}.")
        if r["first_failures"]:
            notes.append("first failed requests of that run (s since the load started): "
                         + "; ".join(f"{f['t']} {f['kind']} {f['detail'][:80]}" for f in r["first_failures"]))
    other = [f"{label}: {ratio(rows, label)}" for label in SETTINGS if label != "lab" and ratio(rows, label)]
    notes.append("ec2-fleet per host over the careful classic per host, the other settings: "
                 + (", ".join(other) if other else "not measured in this run") + ".")
    if careful:
        notes.append(floor_note(careful["per_host_s"], measured_app_start()))
    notes.append(f"Reproduce: `{COMMAND}` (about 25 minutes; EC2_FLEET_BENCH_NET picks the lab's VPC octets).")
    measured = (f"{lab_ratio} ({ours['per_host_s']} s / {careful['per_host_s']} s per host), ec2-fleet "
                f"{ours['failed']} failed, {ours['unsent']} unsent" if lab_ratio is not None and ours and careful
                else "not measured")
    return {
        "title": "7. Side by side: ec2-fleet's rolling update and the classic Ansible rolling update, under load",
        "method": (
            f"A private lab (VPC {net}.0.0/16), provision.yml and site.yml (release 1.0.0) once. Then, at the lab's "
            "target group settings and after provision.yml set the project's recommended ones, three 3-host "
            "rolling updates one host at a time, each to a new release (built beforehand, outside the timed "
            "runs): `playbooks/rolling_update.yml`, the careful classic `bench/classic_rolling.yml` (serial 1, "
            "elb_target absent waiting for `unused`, the app role, elb_target present waiting for `healthy`) and "
            f"the short classic `bench/classic_rolling_short.yml` (a fixed {SHORT_PAUSE_S} s pause, wait_for the "
            f"app's port). Each under {RATE} requests/s of GET /version through the lab's HTTPS load balancer "
            "(ec2_fleet_dev.loadgen, keep-alive, the lab CA) with the target group's health polled every second. "
            "Per run: the ansible-playbook process's wall time and that over 3 hosts; failed requests by kind and "
            "requests not sent over the run and the wait after it; at the playbook's end the targets healthy and "
            "the hosts answering the new release on their own port; the seconds until every target was healthy "
            f"(at most {SETTLE_S} s, the load still running). A run that left the fleet otherwise is put back by "
            "site.yml before the next one."
        ),
        "machine": machine(),
        "targets": [{"target": f"ec2-fleet at most {TARGET_RATIO}x the careful classic's time per host at the "
                               "lab's settings, with 0 failed requests",
                     "measured": measured,
                     "met": lab_ratio is not None and lab_ratio <= TARGET_RATIO and ours_clean}],
        "tables": [
            {"title": f"Rolling update of {HOSTS} hosts one at a time, under {RATE} requests/s through the "
                      "HTTPS load balancer (seconds)",
             "columns": ["target group settings", "form", "wall", "per host", "failed requests", "by kind",
                         "not sent", "most targets out at once", "fewest healthy at once", "at the playbook's end",
                         "every target healthy after", "load"],
             "rows": table_rows(rows)},
        ],
        "notes": notes,
        "figures": {"runs": rows, "classic_ratio": lab_ratio,
                    "settings": {k: v for k, v in SETTINGS.items()}},
    }


def top_level(res: dict) -> dict:
    """latest.json's top-level figure: ec2-fleet per host over the careful classic per host at the lab's settings."""
    return {"classic_ratio": res["figures"]["classic_ratio"]}


if __name__ == "__main__":
    import os

    from ec2_fleet_dev.bench.benchlib import write_results

    res = run(os.environ.get("EC2_FLEET_BENCH_NET", "10.233"))
    write_results("classic", res, top_level(res))
