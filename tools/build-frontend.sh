#!/usr/bin/env bash
# Build the reference frontend (frontend/) on the control node for one API URL.
#
#   tools/build-frontend.sh API_BASE_URL OUT_DIR
#
# API_BASE_URL  the orders API as the browser reaches it: http(s)://host[:port][/path], e.g. the load
#               balancer's https://api.example.com. Baked into the build (VITE_API_BASE_URL).
# OUT_DIR       where the build goes: index.html, assets/index-HASH.{js,css} and build.json (the API URL,
#               the source commit, every file with its size and sha256, and build_id: a hash over them).
#               Replaced as a whole; refused if it exists, is not empty and holds no build.json.
#
# Runs `npm ci` from the committed package-lock.json (--prefer-offline: a warm npm cache needs no
# network; NPM_CONFIG_OFFLINE=true forbids it) in a scratch copy of frontend/, so the source tree is
# never written and two builds may run at once. Needs node >= 18 (Debian 12's nodejs) and npm. Hosts need none of this:
# the output is static files. Prints what it cost (seconds per step, bytes).
set -euo pipefail

die() { echo "build-frontend: $*" >&2; exit 2; }

[ $# -eq 2 ] || die "usage: tools/build-frontend.sh API_BASE_URL OUT_DIR (got $# arguments)"
api_url=${1%/}
out_dir=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$root/frontend"

url_re='^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$'
[[ $api_url =~ $url_re ]] \
    || die "API_BASE_URL must be http(s)://host[:port][/path] with no query or user, got '$1'"
[ -n "$out_dir" ] || die "OUT_DIR must not be empty"
if [ -e "$out_dir" ]; then
    [ -d "$out_dir" ] || die "OUT_DIR '$out_dir' exists and is not a directory"
    if [ -n "$(ls -A "$out_dir")" ] && [ ! -f "$out_dir/build.json" ]; then
        die "OUT_DIR '$out_dir' is not empty and holds no build.json (not a previous build): refusing to replace it"
    fi
fi
command -v node >/dev/null || die "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not installed (Debian: apt-get install npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
    || die "node >= 18 is needed by Vite 6, found $(node --version)"

now() { date +%s.%N; }
t0=$(now)
work=$(mktemp -d "${TMPDIR:-/tmp}/build-frontend.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$src" --exclude=node_modules --exclude=dist -cf - . | tar -C "$work" -xf -

commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# The page shows the frontend's own tree id: a commit that changes nothing under frontend/ builds the
# same files, so a publish of it changes nothing.
tree=$(git -C "$root" rev-parse HEAD:frontend 2>/dev/null || echo unknown)
dirty=false
if [ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain -- frontend 2>/dev/null)" ]; then
    dirty=true
fi

t1=$(now)
(cd "$work" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1 || {
    cat "$work/npm.log" >&2; rm -f "$work/npm.log"; die "npm ci failed (log above)"; }
rm -f "$work/npm.log"
t2=$(now)
(cd "$work" && VITE_API_BASE_URL="$api_url" VITE_BUILD_ID="${tree:0:12}$([ "$dirty" = true ] && echo +dirty)" \
    ./node_modules/.bin/vite build --outDir "$work/dist" --emptyOutDir --logLevel warn) \
    || die "vite build failed"
t3=$(now)

API_URL="$api_url" COMMIT="$commit" TREE="$tree" DIRTY="$dirty" python3 - "$work/dist" <<'EOF'
import hashlib, json, os, subprocess, sys
from pathlib import Path

dist = Path(sys.argv[1])
files = []
for path in sorted(p for p in dist.rglob("*") if p.is_file()):
    data = path.read_bytes()
    files.append({"path": path.relative_to(dist).as_posix(), "size": len(data),
                  "sha256": hashlib.sha256(data).hexdigest()})
def version(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
vite = json.loads((dist.parent / "node_modules/vite/package.json").read_text())["version"]
build_id = hashlib.sha256(json.dumps([os.environ["API_URL"], files], sort_keys=True).encode()).hexdigest()[:16]
record = {
    "api_base_url": os.environ["API_URL"],
    "source_commit": os.environ["COMMIT"],
    "source_tree": os.environ["TREE"],
    "source_dirty": os.environ["DIRTY"] == "true",
    "build_id": build_id,
    "tools": {"node": version(["node", "--version"]), "npm": version(["npm", "--version"]), "vite": vite},
    "files": files,
}
(dist / "build.json").write_text(json.dumps(record, indent=2) + "\n")
EOF

mkdir -p "$(dirname "$out_dir")"
rm -rf "$out_dir.tmp.$$"
mv "$work/dist" "$out_dir.tmp.$$"
rm -rf "$out_dir"
mv "$out_dir.tmp.$$" "$out_dir"
t4=$(now)

python3 - "$out_dir" "$t0" "$t1" "$t2" "$t3" "$t4" <<'EOF'
import json, sys
from pathlib import Path
out, t0, t1, t2, t3, t4 = sys.argv[1], *map(float, sys.argv[2:])
build = json.loads((Path(out) / "build.json").read_text())
size = sum(f["size"] for f in build["files"])
print(f"build-frontend: {out}: build {build['build_id']} for {build['api_base_url']}, "
      f"commit {build['source_commit'][:12]}{' (dirty)' if build['source_dirty'] else ''}, "
      f"{len(build['files'])} files, {size} bytes")
print(f"build-frontend: took {t4 - t0:.1f} s (copy {t1 - t0:.1f}, npm ci {t2 - t1:.1f}, "
      f"vite build {t3 - t2:.1f}, record {t4 - t3:.1f})")
EOF
