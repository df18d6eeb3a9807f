#!/usr/bin/env bash
# Every test (what `make test` runs), in two streams side by side:
#   fleet: pytest tests/fleet, one lab of 3-5 hosts; most of its time it waits on what it proves
#          (the load balancer's registration delay and checks, draining, restarts, a busy first boot);
#          it is the longer stream, so it starts first;
#   rest:  `make lint`, pytest of everything else (moto, test hosts, the lab's own tests, the app),
#          then every molecule scenario; most of its time is CPU.
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
rm -f "$REPORTS"/junit-*.xml "$REPORTS/figures.jsonl" "$REPORTS/streams.json" "$REPORTS/fleet.seconds" "$REPORTS/commit" .cache/molecule/*.result
git rev-parse --short HEAD >"$REPORTS/commit" 2>/dev/null || true
JUNIT=(-o junit_family=xunit1)
started=$(date +%s)
since() { echo "$(( $(date +%s) - $1 ))s"; }

(
  pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-fleet.xml" tests/fleet >"$LOGS/fleet.log" 2>&1
  rc=$?
  echo "$(( $(date +%s) - started ))" >"$REPORTS/fleet.seconds"
  exit $rc
) &
fleet_pid=$!
echo "tests/fleet runs in the background (log $LOGS/fleet.log)"

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

wait "$fleet_pid"
fleet_rc=$?
fleet_time=$(cat "$REPORTS/fleet.seconds" 2>/dev/null || echo 0)
printf '{"pytest tests/fleet": {"rc": %d, "seconds": %d}, "pytest (the rest)": {"rc": %d, "seconds": %d}, "molecule": {"rc": %d, "seconds": %d}, "all": {"rc": %d, "seconds": %d}}\n' \
  "$fleet_rc" "$fleet_time" "$rest_rc" "${rest_time%s}" "$molecule_rc" "${molecule_time%s}" \
  "$(( lint_rc || rest_rc || molecule_rc || fleet_rc ))" "$(( $(date +%s) - started ))" >"$REPORTS/streams.json"
echo "===== tests/fleet ($LOGS/fleet.log)"
cat "$LOGS/fleet.log"
echo "===== streams: lint rc=$lint_rc in $lint_time; pytest (rest) rc=$rest_rc in $rest_time; molecule rc=$molecule_rc in $molecule_time;" \
     "pytest tests/fleet rc=$fleet_rc; all in $(since "$started")"
[[ $lint_rc -eq 0 && $rest_rc -eq 0 && $molecule_rc -eq 0 && $fleet_rc -eq 0 ]]
