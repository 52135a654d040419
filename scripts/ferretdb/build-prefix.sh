#!/usr/bin/env bash
# Builds FerretDB v1.24.2 with the first N patches of our series
# (scripts/ferretdb/0*.patch in order; N=0 is stock 1.24.2) and prints the
# binary's path. Each patch builds on the ones before it, so "up to P-1"
# against "up to P" is the honest with/without of patch P: bench/ferretdb.ts
# (`BENCH_ONLY=ferretdb`) measures each speed-only patch that way.
#
#   scripts/ferretdb/build-prefix.sh 13   # → .cache/ferretdb-prefix-13-<hash>/ferretdb
#
# The directory is named by N and a hash of patches 1..N, so a changed patch
# rebuilds. The Go flags are scripts/provision.sh's. The source is rebuilt in
# one fixed directory so the Go build cache serves the packages a prefix does
# not change (a prefix costs ~1 min on 2 cores instead of several).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
cache="${BALSAM_CACHE_DIR:-$here/.cache}"
version="v1.24.2"
n="${1:?usage: build-prefix.sh N (how many patches of scripts/ferretdb/ to apply)}"
[[ "$n" =~ ^[0-9]+$ ]] || { echo "build-prefix: N must be a number, got $n" >&2; exit 2; }
all=("$here"/scripts/ferretdb/0*.patch)
[ "$n" -le "${#all[@]}" ] || { echo "build-prefix: the series has ${#all[@]} patches, not $n" >&2; exit 2; }
patches=("${all[@]:0:$n}")
hash=$({ echo "$version"; if [ "$n" -gt 0 ]; then cat "${patches[@]}"; fi; } | sha256sum | cut -c1-12)
bin="$cache/ferretdb-prefix-$n-$hash/ferretdb"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

go=$(command -v go || { for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do [ -x "$g" ] && echo "$g" && break; done; })
[ -n "$go" ] || { echo "build-prefix: no Go toolchain" >&2; exit 1; }
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
work="$cache/ferretdb-prefix-src"
mkdir -p "$cache"
# One build at a time: the source directory is shared.
exec 9>"$cache/ferretdb-prefix.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
dir=$(cd "$cache" && "$go" mod download -json "github.com/FerretDB/FerretDB@$version" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || { echo "build-prefix: could not download the FerretDB module" >&2; exit 1; }
rm -rf "$work"; mkdir -p "$work"
cp -r "$dir/." "$work/src"; chmod -R u+w "$work/src"
echo "$version" > "$work/src/build/version/version.txt"
bash "$here/scripts/ferretdb/third-party.sh" "$work/src" "$go" >&2 || { echo "build-prefix: copying the Go modules the patches change failed" >&2; exit 1; }
for p in "${patches[@]}"; do
  (cd "$work/src" && patch -p1 --forward --quiet < "$p") >&2 || { echo "build-prefix: applying $(basename "$p") failed" >&2; exit 1; }
done
mkdir -p "$(dirname "$bin")"
echo "build-prefix: building FerretDB $version + ${n} patches" >&2
(cd "$work/src" && "$go" build -ldflags=-checklinkname=0 -o "$bin.tmp" ./cmd/ferretdb) >&2
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "$bin"
