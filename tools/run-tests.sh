#!/usr/bin/env bash
# Every test (what `make test` runs), in three streams side by side on the machine's two cores:
#   fleet:  pytest tests/fleet but REST_FLEET's files, one lab of 3-5 hosts; most of its time it waits on
#           what it proves (the load balancer's registration delay and checks, draining, restarts, a busy first
#           boot), at normal priority;
#   asg:    every molecule scenario (while the fleet's lab is being provisioned), then REST_FLEET's files
#           (secrets, frontend, the Auto Scaling files: bake, scaling, deploys; then scale-out) on a lab of their own
#           (network 10.252), at normal priority;
#   rest:   `make lint`, then pytest of everything else (moto, test hosts, the lab's own tests, the app), under
#           `nice` (REST_NICE, default 10): CPU-bound, timed against no clock of the labs'.
# Why, measured on this machine (docs/testing.md):
# - all of tests/fleet in one session on one lab was too slow (a rehearsal of 9b6d288: 53 min after it started
#   it had done test_10 to test_30's fourth test, about half of the files' time; test_28 alone took 24 min, 27
#   beside three other streams: the files wait on the lab's own delays more than on the cores);
# - the Auto Scaling files on a second lab after the rest (the CI run of 2eb9b96) passed 90 min;
# - two labs under load at once failed in every run before the lab weighed its hosts' cgroup (devkit
#   lab/cpu.py): podman's parent cgroup of every container was weighed as one process beside the control
#   side's, and the hosts stalled together.
# Each stream writes its own log under .cache/test-logs/; the rest's output is shown as it runs, the others'
# at the end, then one line per stream. Exits non-zero when any stream failed.
#   tools/run-tests.sh [-j MOLECULE_JOBS] SCENARIO...
set -uo pipefail
JOBS=2
if [[ "${1:-}" == "-j" ]]; then JOBS="$2"; shift 2; fi
LOGS=.cache/test-logs
# pytest's JUnit reports, the FIGURE lines the tests print and each stream's time, for
# tools/collect_figures.py (docs/results/tests.md); cleared so they hold this run only.
REPORTS=.cache/test-reports
mkdir -p "$LOGS" "$REPORTS"
rm -f "$REPORTS"/junit-*.xml "$REPORTS/figures.jsonl" "$REPORTS/streams.json" "$REPORTS/fleet.seconds" "$REPORTS/rest-fleet.seconds" "$REPORTS/molecule.rc-seconds" "$REPORTS/commit" .cache/molecule/*.result
git rev-parse --short HEAD >"$REPORTS/commit" 2>/dev/null || true
JUNIT=(-o junit_family=xunit1)
# Short tracebacks (a failing lab test's whole source hid its assertion and the lab's logs from the CI's digest)
# and the slowest tests of each stream, to balance the streams by.
REPORT=(--tb=short --durations=15)
started=$(date +%s)
since() { echo "$(( $(date +%s) - $1 ))s"; }

# tests/fleet files run by the asg stream on a lab of their own instead (a file added to tests/fleet runs in
# the fleet stream).
# test_40 (secrets), test_60 (frontend) and test_90 (scale out to five, last: the others expect three) need only
# a converged lab. tests/fleet was the last stream to end in the CI run of 57018df (73 min; the Auto Scaling
# files' at 50) and in a rehearsal of 976dcf4 (79 min, with test_40 and test_60 moved; the asg stream 62, the
# rest 73); test_90 took 3.6 min there, and test_95 after it rolled five hosts (9 min) instead of the two test_30
# leaves.
REST_FLEET=(tests/fleet/test_40_secrets.py tests/fleet/test_60_frontend.py tests/fleet/test_50_bake.py
            tests/fleet/test_51_asg_scaling.py tests/fleet/test_52_asg_deploy.py tests/fleet/test_90_scale.py)
(
  pytest -q "${JUNIT[@]}" "${REPORT[@]}" --junitxml="$REPORTS/junit-fleet.xml" tests/fleet "${REST_FLEET[@]/#/--ignore=}" \
    >"$LOGS/fleet.log" 2>&1
  rc=$?
  echo "$(( $(date +%s) - started ))" >"$REPORTS/fleet.seconds"
  exit $rc
) &
fleet_pid=$!
echo "tests/fleet runs in the background (log $LOGS/fleet.log)"
(
  molecule_started=$(date +%s)
  tools/run-molecule.sh -j "$JOBS" "$@" >"$LOGS/molecule.log" 2>&1
  echo "$? $(( $(date +%s) - molecule_started ))" >"$REPORTS/molecule.rc-seconds"
  EC2_FLEET_TEST_LAB_NET=10.252 pytest -q "${JUNIT[@]}" "${REPORT[@]}" --junitxml="$REPORTS/junit-rest-fleet.xml" \
    --basetemp=.cache/pytest-rest-fleet "${REST_FLEET[@]}" >"$LOGS/rest-fleet.log" 2>&1
  rc=$?
  echo "$(( $(date +%s) - started ))" >"$REPORTS/rest-fleet.seconds"
  exit $rc
) &
asg_pid=$!
echo "molecule then ${REST_FLEET[*]} run in the background (logs $LOGS/molecule.log, $LOGS/rest-fleet.log)"

nice -n "${REST_NICE:-10}" make -s lint 2>&1 | tee "$LOGS/lint.log"
lint_rc=${PIPESTATUS[0]}
lint_time=$(since "$started")
nice -n "${REST_NICE:-10}" pytest -q "${JUNIT[@]}" "${REPORT[@]}" --junitxml="$REPORTS/junit-rest.xml" tests app/tests \
  --ignore=tests/fleet 2>&1 | tee "$LOGS/rest.log"
rest_rc=${PIPESTATUS[0]}
rest_time=$(since "$started")

wait "$asg_pid"
rest_fleet_rc=$?
rest_fleet_time=$(cat "$REPORTS/rest-fleet.seconds" 2>/dev/null || echo 0)
wait "$fleet_pid"
fleet_rc=$?
fleet_time=$(cat "$REPORTS/fleet.seconds" 2>/dev/null || echo 0)
read -r molecule_rc molecule_secs <"$REPORTS/molecule.rc-seconds" 2>/dev/null || { molecule_rc=1; molecule_secs=0; }
molecule_time="${molecule_secs}s"
printf '{"pytest tests/fleet": {"rc": %d, "seconds": %d}, "pytest tests/fleet, the asg files": {"rc": %d, "seconds": %d}, "pytest (the rest)": {"rc": %d, "seconds": %d}, "molecule": {"rc": %d, "seconds": %d}, "all": {"rc": %d, "seconds": %d}}\n' \
  "$fleet_rc" "$fleet_time" "$rest_fleet_rc" "$rest_fleet_time" "$rest_rc" "${rest_time%s}" "$molecule_rc" \
  "${molecule_time%s}" "$(( lint_rc || rest_rc || rest_fleet_rc || molecule_rc || fleet_rc ))" \
  "$(( $(date +%s) - started ))" >"$REPORTS/streams.json"
echo "===== tests/fleet ($LOGS/fleet.log)"
cat "$LOGS/fleet.log"
echo "===== ${REST_FLEET[*]} ($LOGS/rest-fleet.log)"
cat "$LOGS/rest-fleet.log"
echo "===== molecule ($LOGS/molecule.log)"
cat "$LOGS/molecule.log"
# The failures again, short, last: the CI's digest keeps the head and the tail of a long output.
echo "===== failures, short"
for log in "$LOGS/rest.log" "$LOGS/fleet.log" "$LOGS/rest-fleet.log"; do
  grep -E '^(FAILED|ERROR) ' "$log" 2>/dev/null | cut -c1-300
  grep -E '^E  ' "$log" 2>/dev/null | grep -v '^E  *$' | head -n 12 | cut -c1-300
done
sed 's/\x1b\[[0-9;]*m//g' "$LOGS/molecule.log" 2>/dev/null | grep -E 'fatal: \[|failed: \[|ERROR ' | head -n 20 | cut -c1-400
echo "===== streams: lint rc=$lint_rc in $lint_time; pytest (rest) rc=$rest_rc in $rest_time;" \
     "asg files rc=$rest_fleet_rc in ${rest_fleet_time}s; molecule rc=$molecule_rc in $molecule_time;" \
     "pytest tests/fleet rc=$fleet_rc in ${fleet_time}s; all in $(since "$started")"
[[ $lint_rc -eq 0 && $rest_rc -eq 0 && $rest_fleet_rc -eq 0 && $molecule_rc -eq 0 && $fleet_rc -eq 0 ]]
