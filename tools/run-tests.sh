#!/usr/bin/env bash
# Every test (what `make test` runs), in three streams side by side:
#   fleet (two labs): pytest tests/fleet, its files split in two halves of about equal time, each half
#          with a lab of its own (3-5 hosts, network 10.231 and 10.252); most of their time they wait on
#          what they prove (the load balancer's registration delay and checks, draining, restarts, a busy
#          first boot), so two labs side by side take about the time of one half;
#   rest:  `make lint`, pytest of everything else (moto, test hosts, the lab's own tests, the app),
#          then every molecule scenario; most of its time is CPU.
# Side by side they take about the time of the longest one instead of the sum. Each stream writes
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
rm -f "$REPORTS"/junit-*.xml "$REPORTS/figures.jsonl" "$REPORTS/streams.json" "$REPORTS"/fleet-*.seconds "$REPORTS/commit" .cache/molecule/*.result
git rev-parse --short HEAD >"$REPORTS/commit" 2>/dev/null || true
JUNIT=(-o junit_family=xunit1)
started=$(date +%s)
since() { echo "$(( $(date +%s) - $1 ))s"; }

# The second lab's files: faults, alarms and the other fleet-wide cases; every other file of tests/fleet
# (a new one too) runs in the first, with test_10 (provision, site, verify from nothing) and test_95 (the
# first-run guide's commands, which this lab's session must have run).
FLEET_B=(test_15_access.py test_20_faults.py test_22_external_cache.py test_24_pooler.py test_28_alarms.py
         test_40_secrets.py test_60_frontend.py)
fleet_half() {  # NAME NET PYTEST-ARGS...: one half in the background, its seconds in $REPORTS/NAME.seconds
  local name=$1 net=$2
  shift 2
  (
    EC2_FLEET_TEST_LAB_NET=$net pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-$name.xml" \
      --basetemp=".cache/pytest-$name" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    echo "$(( $(date +%s) - started ))" >"$REPORTS/$name.seconds"
    exit $rc
  ) &
}
fleet_half fleet-a 10.231 tests/fleet "${FLEET_B[@]/#/--ignore=tests/fleet/}"
fleet_a_pid=$!
fleet_half fleet-b 10.252 "${FLEET_B[@]/#/tests/fleet/}"
fleet_b_pid=$!
echo "tests/fleet runs in the background on two labs (logs $LOGS/fleet-a.log, $LOGS/fleet-b.log)"

make -s lint 2>&1 | tee "$LOGS/lint.log"
lint_rc=${PIPESTATUS[0]}
lint_time=$(since "$started")
pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-rest.xml" tests app/tests --ignore=tests/fleet 2>&1 | tee "$LOGS/rest.log"
rest_rc=${PIPESTATUS[0]}
rest_time=$(since "$started")
molecule_started=$(date +%s)
tools/run-molecule.sh -j "$JOBS" "$@" 2>&1 | tee "$LOGS/molecule.log"
molecule_rc=${PIPESTATUS[0]}
molecule_time=$(since "$molecule_started")

wait "$fleet_a_pid"
fleet_a_rc=$?
wait "$fleet_b_pid"
fleet_b_rc=$?
fleet_a_time=$(cat "$REPORTS/fleet-a.seconds" 2>/dev/null || echo 0)
fleet_b_time=$(cat "$REPORTS/fleet-b.seconds" 2>/dev/null || echo 0)
all_rc=$(( lint_rc || rest_rc || molecule_rc || fleet_a_rc || fleet_b_rc ))
printf '{"pytest tests/fleet, first lab": {"rc": %d, "seconds": %d}, "pytest tests/fleet, second lab": {"rc": %d, "seconds": %d}, "pytest (the rest)": {"rc": %d, "seconds": %d}, "molecule": {"rc": %d, "seconds": %d}, "all": {"rc": %d, "seconds": %d}}\n' \
  "$fleet_a_rc" "$fleet_a_time" "$fleet_b_rc" "$fleet_b_time" "$rest_rc" "${rest_time%s}" "$molecule_rc" "${molecule_time%s}" \
  "$all_rc" "$(( $(date +%s) - started ))" >"$REPORTS/streams.json"
for name in fleet-a fleet-b; do
  echo "===== tests/fleet, $name ($LOGS/$name.log)"
  cat "$LOGS/$name.log"
done
echo "===== streams: lint rc=$lint_rc in $lint_time; pytest (rest) rc=$rest_rc in $rest_time; molecule rc=$molecule_rc in $molecule_time;" \
     "pytest tests/fleet rc=$fleet_a_rc in ${fleet_a_time}s and rc=$fleet_b_rc in ${fleet_b_time}s; all in $(since "$started")"
[[ $all_rc -eq 0 ]]
