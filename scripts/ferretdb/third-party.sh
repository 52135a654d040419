#!/usr/bin/env bash
# Copies the Go modules named in third-party.txt into a FerretDB source tree
# (SRC/third_party/<module>), at the version SRC's go.mod requires, so a patch
# of the series can change them. Called by scripts/provision.sh and
# build-prefix.sh after the copy of FerretDB's source and before the patches.
#
#   scripts/ferretdb/third-party.sh SRC GO
set -euo pipefail
src="${1:?usage: third-party.sh SRC GO}"
go="${2:?usage: third-party.sh SRC GO}"
list="$(cd "$(dirname "$0")" && pwd)/third-party.txt"
while read -r mod _; do
  case "$mod" in '' | '#'*) continue ;; esac
  dir=$(cd "$src" && "$go" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "third-party: could not download $mod through the Go module proxy" >&2; exit 1; }
  mkdir -p "$src/third_party/$mod"
  cp -r "$dir/." "$src/third_party/$mod"
  chmod -R u+w "$src/third_party/$mod"
done <"$list"
