#!/usr/bin/env bash
# Every test (what `make test` runs), in two streams side by side on the machine's two cores:
#   fleet: pytest tests/fleet, every file in one session on one lab of 3-5 hosts (the Auto Scaling files
#          50-52 too); most of its time it waits on what it proves (the load balancer's registration delay
#          and checks, draining, restarts, a busy first boot, scaling periods), and its timings are what it
#          judges: it runs at normal priority, and it is the only lab under load at any time;
#   rest:  every molecule scenario (normal priority, while the fleet's lab is being provisioned), then
#          `make lint` and pytest of everything else (moto, test hosts, the lab's own tests, the app) under
#          `nice` (REST_NICE, default 10): CPU-bound, timed against no clock of the fleet's.
# Why: the two cores are the limit. The CI run of 2eb9b96 (the Auto Scaling files on a second lab after the
# rest, molecule after tests/fleet) was stopped at 90 min with both streams unfinished; a rehearsal of three
# streams (the Auto Scaling files on their second lab beside tests/fleet from the start, the rest niced) put
# two labs under load at once: a load average of 10 to 40, 51 client timeouts at 10 s in an alarm test, a
# canary test with most requests failed, and the niced rest at 27 % after 50 min. Two labs under load never
# passed here; one lab at a time, with the CPU-bound tests yielding to it, is the layout left.
# tests/fleet split over two labs at the same priority as the rest was tried too (CI run of b14da93): two
# alarm tests failed on the overloaded cores, and two rolling tests failed because the files depend on each
# other's order.
# Each stream writes its own log under .cache/test-logs/; the rest's output is shown as it runs, the fleet's
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
rm -f "$REPORTS"/junit-*.xml "$REPORTS/figures.jsonl" "$REPORTS/streams.json" "$REPORTS/fleet.seconds" "$REPORTS/molecule.rc-seconds" "$REPORTS/commit" .cache/molecule/*.result
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

molecule_started=$(date +%s)
tools/run-molecule.sh -j "$JOBS" "$@" >"$LOGS/molecule.log" 2>&1
molecule_rc=$?
molecule_time="$(( $(date +%s) - molecule_started ))s"
echo "molecule rc=$molecule_rc in $molecule_time (log $LOGS/molecule.log)"
lint_started=$(date +%s)
nice -n "${REST_NICE:-10}" make -s lint 2>&1 | tee "$LOGS/lint.log"
lint_rc=${PIPESTATUS[0]}
lint_time=$(since "$lint_started")
nice -n "${REST_NICE:-10}" pytest -q "${JUNIT[@]}" --junitxml="$REPORTS/junit-rest.xml" tests app/tests \
  --ignore=tests/fleet 2>&1 | tee "$LOGS/rest.log"
rest_rc=${PIPESTATUS[0]}
rest_time=$(since "$started")

wait "$fleet_pid"
fleet_rc=$?
fleet_time=$(cat "$REPORTS/fleet.seconds" 2>/dev/null || echo 0)
printf '{"pytest tests/fleet": {"rc": %d, "seconds": %d}, "molecule": {"rc": %d, "seconds": %d}, "pytest (the rest)": {"rc": %d, "seconds": %d}, "all": {"rc": %d, "seconds": %d}}\n' \
  "$fleet_rc" "$fleet_time" "$molecule_rc" "${molecule_time%s}" "$rest_rc" "${rest_time%s}" \
  "$(( lint_rc || rest_rc || molecule_rc || fleet_rc ))" "$(( $(date +%s) - started ))" >"$REPORTS/streams.json"
echo "===== tests/fleet ($LOGS/fleet.log)"
cat "$LOGS/fleet.log"
echo "===== molecule ($LOGS/molecule.log)"
cat "$LOGS/molecule.log"
echo "===== streams: molecule rc=$molecule_rc in $molecule_time; lint rc=$lint_rc in $lint_time;" \
     "pytest (rest) rc=$rest_rc, the stream done in $rest_time; pytest tests/fleet rc=$fleet_rc in ${fleet_time}s;" \
     "all in $(since "$started")"
[[ $lint_rc -eq 0 && $rest_rc -eq 0 && $molecule_rc -eq 0 && $fleet_rc -eq 0 ]]
