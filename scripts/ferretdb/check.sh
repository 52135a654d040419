#!/usr/bin/env bash
# Runs each test of the MongoDB-wire conformance suite on its own, against a
# fresh server started from the given FerretDB binary (default: the
# provisioned one), and prints one line per test. Each test gets its own
# server because a build that hangs on a bulk leaves its server stuck for the
# tests after it. Use it to show that a patch fixes what its test checks:
#
#   scripts/ferretdb/check.sh /path/to/ferretdb-without-the-patch
#
# Needs `npm run build` first. Exit status: the number of failed tests.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
src="$here/test/conformance/mongo-wire.conformance.test.ts"
compiled="$here/dist/test/conformance/mongo-wire.conformance.test.js"
[ -f "$compiled" ] || { echo "check: $compiled is missing; run npm run build" >&2; exit 255; }
[ $# -ge 1 ] && export BALSAM_FERRETDB="$1"
unset MONGODB_URL REDIS_URL
failed=0
# Test names as written in the source; a ${...} part matches anything.
while IFS= read -r name; do
  pattern=$(printf '%s' "$name" | sed -e 's/[][\.*^$()+?{}|/]/\\&/g' -e 's/\\\$\\{[^}]*\\}/.*/g')
  out=$(timeout "${CHECK_TIMEOUT:-300}" node --test --test-reporter=tap --test-name-pattern="^$pattern\$" "$compiled" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "pass  $name"
  else
    failed=$((failed + 1))
    # The first line of the first failure's message in the TAP output.
    why=$(printf '%s\n' "$out" | awk '/^ *error: \|-$/ { getline; print; exit } /^ *error: / { sub(/^ *error: */, ""); print; exit }' | sed 's/^ *//' | cut -c1-160)
    [ $rc -eq 124 ] && why="no result within ${CHECK_TIMEOUT:-300} s"
    echo "FAIL  $name — $why"
  fi
done < <(grep -oE '^\s*test\(("[^"]+"|`[^`]+`)' "$src" | sed -E 's/^\s*test\(["`](.*)["`]$/\1/')
exit $failed
