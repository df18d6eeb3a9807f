#!/usr/bin/env bash
# Every test (what `make test` runs), in two streams side by side:
#   fleet: pytest tests/fleet, one lab of 3-5 hosts; most of its time it waits on what it proves
#          (the load balancer's registration delay and checks, draining, restarts, a busy first boot);
#          it is the longer stream, so it starts first;
#   rest:  `make lint`, pytest of everything else (moto, test hosts, the lab's own tests, the app),
#          then the fleet files that need a lab of their own and fit in the rest's slack (REST_FLEET: a lab
#          on 10.252 after the CPU-bound tests are done); most of its time is CPU.
# Every molecule scenario runs after tests/fleet, in the fleet stream: with the asg deploy test (test_52) in
# REST_FLEET the rest stream became the longer one (CI run of 65a59d7: fleet 69 min, rest 65 min + molecule 10).
# tests/fleet split over two labs from the start was tried (CI run of b14da93): beside the rest's CPU-bound
# tests the two cores were overloaded (two alarm tests failed, the rest took 48 min instead of 36), and the
# files depend on each other's order (two rolling tests failed).
# Side by side they take about the time of the longer one instead of the sum. Each stream writes
# its own log under .cache/test-logs/; the rest's output is shown as it runs, the fleet's at the end,
# then one line per stream. Exits non-zero when any stream failed.
#   tools/run-tests.sh [-j MOLECULE_JOBS] SCENARIO...
set -uo pipefail
JOBS=2
if [[ "${1:-}" == "-j" ]]; then JOBS="$2"; shift 2; fi
LOGS=.cache/test-logs
# pytest's JUnit reports, the FIGURE lines the tests print and each stream's time, for
# tools/collect_figures.py (docs/results/tests.md); cleared so they hold this run only.
REPORTS=.cache/test-reports
mkdir -p "$LOGS" "$REPORTS"
rm -f "$REPORTS"/junit-*.xml "$REPORTS/figures.jsonl" "$REPORTS/streams.json" "$REPORTS/fleet.seconds" "$REPORTS/molecule.rc-seconds" "$REPORTS/commit" .cache/molecule/*.result
git rev-parse --short HEAD >"$REPORTS/commit" 2>/dev/null || true
JUNIT=(-o junit_family=xunit1)
started=$(date +%s)
since() { echo "$(( $(date +%s) - $1 ))s"; }

# tests/fleet files run by the rest stream on a lab of their own instead (a file added to tests/fleet runs in
# the fleet stream).
REST_FLEET=(tests/fleet/test_50_bake.py tests/fleet/test_51_asg_scaling.py tests/fleet/test_52_asg_deploy.py)
(
  pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-fleet.xml" tests/fleet "${REST_FLEET[@]/#/--ignore=}" \
    >"$LOGS/fleet.log" 2>&1
  rc=$?
  echo "$(( $(date +%s) - started ))" >"$REPORTS/fleet.seconds"
  molecule_started=$(date +%s)
  tools/run-molecule.sh -j "$JOBS" "$@" >"$LOGS/molecule.log" 2>&1
  echo "$? $(( $(date +%s) - molecule_started ))" >"$REPORTS/molecule.rc-seconds"
  exit $rc
) &
fleet_pid=$!
echo "tests/fleet runs in the background (log $LOGS/fleet.log)"

make -s lint 2>&1 | tee "$LOGS/lint.log"
lint_rc=${PIPESTATUS[0]}
lint_time=$(since "$started")
pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-rest.xml" tests app/tests --ignore=tests/fleet 2>&1 | tee "$LOGS/rest.log"
rest_rc=${PIPESTATUS[0]}
EC2_FLEET_TEST_LAB_NET=10.252 pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-rest-fleet.xml" \
  --basetemp=.cache/pytest-rest-fleet "${REST_FLEET[@]}" 2>&1 | tee "$LOGS/rest-fleet.log"
rest_fleet_rc=${PIPESTATUS[0]}
rest_rc=$(( rest_rc || rest_fleet_rc ))
rest_time=$(since "$started")

wait "$fleet_pid"
fleet_rc=$?
fleet_time=$(cat "$REPORTS/fleet.seconds" 2>/dev/null || echo 0)
read -r molecule_rc molecule_secs <"$REPORTS/molecule.rc-seconds" 2>/dev/null || { molecule_rc=1; molecule_secs=0; }
molecule_time="${molecule_secs}s"
printf '{"pytest tests/fleet": {"rc": %d, "seconds": %d}, "pytest (the rest)": {"rc": %d, "seconds": %d}, "molecule": {"rc": %d, "seconds": %d}, "all": {"rc": %d, "seconds": %d}}\n' \
  "$fleet_rc" "$fleet_time" "$rest_rc" "${rest_time%s}" "$molecule_rc" "${molecule_time%s}" \
  "$(( lint_rc || rest_rc || molecule_rc || fleet_rc ))" "$(( $(date +%s) - started ))" >"$REPORTS/streams.json"
echo "===== tests/fleet ($LOGS/fleet.log)"
cat "$LOGS/fleet.log"
echo "===== molecule ($LOGS/molecule.log)"
cat "$LOGS/molecule.log"
echo "===== streams: lint rc=$lint_rc in $lint_time; pytest (rest) rc=$rest_rc in $rest_time; molecule rc=$molecule_rc in $molecule_time;" \
     "pytest tests/fleet rc=$fleet_rc; all in $(since "$started")"
[[ $lint_rc -eq 0 && $rest_rc -eq 0 && $molecule_rc -eq 0 && $fleet_rc -eq 0 ]]
