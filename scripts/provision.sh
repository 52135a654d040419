#!/usr/bin/env bash
# Idempotent provisioning of what the tests, the demo and local databases need:
# redis-server, a MongoDB-wire server (mongod if present, else FerretDB built
# through the Go module proxy), and an MPI implementation. Safe to run often:
# each step checks first and does nothing when its tool is already there.
#
# Usage: scripts/provision.sh [--for-tests | --for-bench | --with-slurm]
#   --for-tests: also what only the tests need (a one-node Slurm cluster,
#   chromium for the dashboard's browser tests); --for-bench: also the peers
#   the bench measures us against (Dask distributed, Celery), never installed
#   for the tests; --with-slurm: Slurm alone.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache="${BALSAM_CACHE_DIR:-$here/.cache}"
ferret_version="v1.24.2"
# The build tag is a hash of our patch series (scripts/ferretdb/*.patch), so a
# changed patch builds a new binary instead of testing a stale cached one.
# services/dbserver/servers.ts computes the same tag to find the binary.
ferret_patches=("$here"/scripts/ferretdb/0*.patch)
ferret_build="$ferret_version-$(cat "${ferret_patches[@]}" | sha256sum | cut -c1-12)"
ferret_bin="$cache/ferretdb-$ferret_build/ferretdb"
with_slurm=0
for_tests=0
for_bench=0
for a in "$@"; do
  case "$a" in
    --with-slurm) with_slurm=1 ;;
    --for-tests) with_slurm=1; for_tests=1 ;;
    --for-bench) for_bench=1 ;;
    *) echo "provision: unknown option $a" >&2; exit 2 ;;
  esac
done

say() { echo "provision: $*" >&2; }
fail() {
  say "$1"
  say "supply running servers instead: export MONGODB_URL=mongodb://host:27017 REDIS_URL=redis://host:6379"
  say "(or, where Docker runs: docker compose up -d mongo redis, then the same two variables)"
  exit 1
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo="sudo -n"
  fi
  if [ "$apt_updated" = 0 ]; then
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Redis (the tests' cluster pass starts clusters and Sentinel groups of its own, even with REDIS_URL given)
if { [ -z "${REDIS_URL:-}" ] || [ "$for_tests" = 1 ]; } && ! command -v redis-server >/dev/null 2>&1; then
  say "installing redis-server"
  apt_install redis-server || fail "redis-server is missing and could not be installed (apt-get install redis-server)"
fi

# MongoDB-wire server
find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [ -x "$g" ] && { echo "$g"; return; }
  done
  return 1
}
if [ -z "${MONGODB_URL:-}" ] && ! command -v mongod >/dev/null 2>&1 && [ ! -x "$ferret_bin" ]; then
  go=$(find_go) || fail "no mongod and no Go toolchain to build FerretDB $ferret_version (install Go >= 1.21 or mongod)"
  say "building FerretDB $ferret_version with $go (a few minutes on 2 cores, once)"
  work="$cache/ferretdb-src"
  rm -rf "$work"; mkdir -p "$work" "$(dirname "$ferret_bin")"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local
  # A plain `go install` builds a binary that panics at start: the module lacks
  # build/version/version.txt, so build from a writable copy with it written.
  dir=$(cd "$work" && "$go" mod download -json "github.com/FerretDB/FerretDB@$ferret_version" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || fail "could not download the FerretDB module through the Go module proxy"
  cp -r "$dir/." "$work/src"; chmod -R u+w "$work/src"
  echo "$ferret_version" > "$work/src/build/version/version.txt"
  # Go modules a patch changes (scripts/ferretdb/third-party.txt) go into the tree first.
  bash "$here/scripts/ferretdb/third-party.sh" "$work/src" "$go" || fail "copying the Go modules the FerretDB patches change failed"
  # scripts/ferretdb/*.patch, applied in order; each file says why it exists
  # (scripts/ferretdb/README.md lists them and the conformance test each fixes).
  command -v patch >/dev/null 2>&1 || apt_install patch || fail "the patch command is missing (apt-get install patch)"
  for p in "${ferret_patches[@]}"; do
    (cd "$work/src" && patch -p1 --forward --quiet < "$p") || fail "applying $(basename "$p") to FerretDB failed"
  done
  # Newer Go rejects some //go:linkname uses in FerretDB's dependencies at link time.
  (cd "$work/src" && "$go" build -ldflags=-checklinkname=0 -o "$ferret_bin" ./cmd/ferretdb) \
    || fail "building FerretDB failed (see the Go output above)"
  rm -rf "$work"
  say "FerretDB at $ferret_bin"
fi

# MPI, for the launcher's mpi job mode
if ! command -v mpirun >/dev/null 2>&1 && ! command -v mpiexec >/dev/null 2>&1; then
  say "installing openmpi-bin"
  apt_install openmpi-bin || fail "no MPI implementation and none could be installed (apt-get install openmpi-bin)"
fi

# ip (iproute2): security and cluster tests make network namespaces that stand
# in for compute nodes; setpriv/unshare come with util-linux.
if ! command -v ip >/dev/null 2>&1 && [ ! -x /usr/sbin/ip ] && [ ! -x /sbin/ip ]; then
  say "installing iproute2"
  apt_install iproute2 || fail "the ip command is missing and could not be installed (apt-get install iproute2)"
fi

# A C compiler: `npm run build` compiles native/balsam-spawn.c, through which
# launchers start job processes (without it they fork from Node, slower).
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  say "installing gcc"
  apt_install gcc libc6-dev || fail "no C compiler and none could be installed (apt-get install gcc libc6-dev)"
fi

# Python 3 and pip: the Python client (clients/python) and its tests, which
# also check that `pip install ./clients/python` works without a package index.
if ! command -v python3 >/dev/null 2>&1; then
  say "installing python3"
  apt_install python3 || fail "python3 is missing and could not be installed (apt-get install python3)"
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  say "installing python3-pip"
  apt_install python3-pip || fail "pip is missing for python3 and could not be installed (apt-get install python3-pip)"
fi

# chromium: the dashboard's browser tests drive Debian's build through
# playwright-core, which downloads no browser of its own. Tests only: the
# demo and users need no browser here.
if [ "$for_tests" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium"
  apt_install chromium || fail "chromium is missing and could not be installed (apt-get install chromium)"
fi

# faketime (libfaketime): the skewed-clock tests run launchers whose node
# clocks are hours off (test/integration/launcher.skew.test.ts). Tests only.
if [ "$for_tests" = 1 ] && [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] && ! command -v faketime >/dev/null 2>&1; then
  say "installing faketime"
  apt_install faketime || fail "libfaketime is missing and could not be installed (apt-get install faketime)"
fi

# Dask distributed and Celery (with redis-py for its Redis broker): the
# systems a user would pick instead of ours, run on the same no-op jobs in the
# same bench run (bench/peers.ts). Debian's builds, so no package index is
# needed; Debian's python3 sees them (bench/peers.ts runs /usr/bin/python3).
# Bench only.
bench_python=/usr/bin/python3
[ -x "$bench_python" ] || bench_python=python3
if [ "$for_bench" = 1 ] && ! "$bench_python" -c 'import distributed, celery, redis' >/dev/null 2>&1; then
  say "installing Dask distributed and Celery (the bench's peers)"
  apt_install python3-distributed python3-celery python3-redis || fail "the bench's peers could not be installed (apt-get install python3-distributed python3-celery python3-redis)"
fi

if [ "$with_slurm" = 1 ]; then
  "$here/scripts/provision-slurm.sh"
fi
exit 0
