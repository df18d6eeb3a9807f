#!/usr/bin/env bash
# Run molecule scenarios, JOBS at a time, each with its own log under .cache/molecule/.
# Prints one line per scenario (result and time) and the tail of every failed log;
# exits non-zero when any scenario failed.
#   tools/run-molecule.sh [-j JOBS] SCENARIO...
set -uo pipefail
JOBS=2
if [[ "${1:-}" == "-j" ]]; then JOBS="$2"; shift 2; fi
LOGS=.cache/molecule
mkdir -p "$LOGS"

run_one() {
  local s="$1" start rc
  start=$(date +%s)
  molecule test -s "$s" >"$LOGS/$s.log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" >"$LOGS/$s.result"
  if [[ $rc -eq 0 ]]; then echo "molecule $s: passed in $(( $(date +%s) - start ))s"; else echo "molecule $s: FAILED (rc=$rc) in $(( $(date +%s) - start ))s"; fi
}
export -f run_one
export LOGS

printf '%s\n' "$@" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

failed=0
for s in "$@"; do
  read -r rc _ <"$LOGS/$s.result" || rc=1
  if [[ "$rc" != 0 ]]; then
    failed=$((failed + 1))
    echo "===== tail of $LOGS/$s.log"
    tail -n 80 "$LOGS/$s.log"
  fi
done
echo "molecule: $(( $# - failed )) passed, $failed failed"
exit $(( failed > 0 ))
