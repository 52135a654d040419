#!/usr/bin/env bash
# Builds native/balsam-spawn.c into dist/native/balsam-spawn (part of
# `npm run build`). The launcher starts job processes through it when it is
# there, and from Node (child_process.spawn) when it is not: a machine
# without a C compiler still builds and runs, only slower per job.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/native/balsam-spawn.c"
out="$here/dist/native/balsam-spawn"
mkdir -p "$here/dist/native"
cc="${CC:-$(command -v cc || command -v gcc || true)}"
if [[ -z "$cc" ]]; then
  rm -f "$out"
  echo "build-native: no C compiler (cc, gcc or \$CC): launchers will start jobs from Node (slower per job)" >&2
  exit 0
fi
# Into a temporary name first: a launcher running the old binary keeps it.
if ! "$cc" -O2 -Wall -Wextra -o "$out.tmp" "$src"; then
  rm -f "$out" "$out.tmp"
  echo "build-native: $cc could not build $src: launchers will start jobs from Node (slower per job)" >&2
  exit 0
fi
mv -f "$out.tmp" "$out"
