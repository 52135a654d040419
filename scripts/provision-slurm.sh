#!/usr/bin/env bash
# Idempotently install and start a one-node Slurm cluster (Debian slurm-wlm +
# munge) on this machine, for the launcher's slurm scheduler and its tests.
#
#  - node already idle/mixed/allocated and both daemons up: say so, exit 0.
#  - packages missing: apt-get install slurm-wlm munge.
#  - munge key missing: create it; munged not answering: start it.
#  - slurm.conf missing, or written by this script: (re)write it for this
#    machine (host name, CPUs, memory). One without the marker line below is
#    somebody else's and is used as it is.
#  - slurmctld / slurmd not running: start them; node down or drained:
#    resume it. Every step waits for its condition with a bounded poll.
#
# Needs root (re-runs itself with `sudo -n` when it can). On failure prints one
# line saying what is missing and exits 1.
#
# Environment: SLURM_CONF (default /etc/slurm/slurm.conf),
#              PROVISION_SLURM_WAIT seconds per wait (default 30).
#
# Usage: scripts/provision-slurm.sh
set -euo pipefail

marker="# written by balsam scripts/provision-slurm.sh"
conf="${SLURM_CONF:-/etc/slurm/slurm.conf}"
wait_s="${PROVISION_SLURM_WAIT:-30}"
partition="debug"
munge_key=/etc/munge/munge.key
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "provision-slurm: $*" >&2; }
fail() { say "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
running() { pgrep -x "$1" >/dev/null 2>&1; }

# wait_for SECONDS CMD...: run CMD until it succeeds or SECONDS pass.
wait_for() {
  local end=$((SECONDS + $1)); shift
  while :; do
    "$@" && return 0
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.25
  done
}

# States of the cluster's nodes, one per line (empty when sinfo cannot answer).
node_states() { timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true; }
is_ok_state() { case "$1" in idle|mixed|allocated|completing|planned) return 0 ;; *) return 1 ;; esac; }
any_node_ok() {
  local n s
  while read -r n s; do is_ok_state "$s" && return 0; done <<<"$(node_states)"
  return 1
}

# ---------------------------------------------------------------- fast path
# (munge first: with munged or slurmctld gone, sinfo retries for ~9 s.)
if have sinfo && have munge && running slurmctld && running slurmd \
   && munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
   && timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' \
   && timeout 5 scontrol show slurmd >/dev/null 2>&1; then
  while read -r n s; do
    if [ -n "${s:-}" ] && is_ok_state "$s"; then
      say "slurm already up: node $n $s"
      exit 0
    fi
  done <<<"$(node_states)"
fi

# ---------------------------------------------------------------- root
if [ "$(id -u)" != 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then
    exec sudo -n -E "$0" "$@"
  fi
  fail "must run as root (or with password-less sudo) to install and start slurm"
fi

# ---------------------------------------------------------------- packages
missing=()
for c in slurmctld slurmd sinfo sbatch srun squeue scontrol munged munge unmunge; do
  have "$c" || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  have apt-get || fail "missing ${missing[*]} and no apt-get to install slurm-wlm and munge"
  say "installing slurm-wlm and munge (missing: ${missing[*]})"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null 2>&1 \
    || fail "apt-get install slurm-wlm munge failed (run it by hand to see why)"
  for c in "${missing[@]}"; do
    have "$c" || fail "$c still missing after installing slurm-wlm and munge"
  done
fi

# ---------------------------------------------------------------- munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  id munge >/dev/null 2>&1 || fail "user munge is missing (reinstall the munge package)"
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s "$munge_key" ]; then
    say "creating munge key $munge_key"
    if have mungekey; then
      mungekey --create --keyfile="$munge_key" >/dev/null 2>&1 \
        || fail "mungekey --create failed: no munge key at $munge_key"
    else
      dd if=/dev/urandom of="$munge_key" bs=1024 count=1 status=none \
        || fail "could not write a munge key to $munge_key"
    fi
  fi
  chown munge:munge "$munge_key"
  chmod 0400 "$munge_key"
  munge_starts=0
  start_munged() {
    running munged && return 0
    [ "$munge_starts" -lt 3 ] || return 1
    munge_starts=$((munge_starts + 1))
    say "starting munged"
    # --force lets munged replace a socket left behind by one that was killed.
    runuser -u munge -- munged --force >/dev/null 2>&1 \
      || say "munged exited with an error at start (see /var/log/munge/munged.log)"
    return 0
  }
  munge_ready() { start_munged && munge_ok; }
  wait_for "$wait_s" munge_ready \
    || fail "munge does not work: 'munge -n | unmunge' fails after ${wait_s}s (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- slurm.conf
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
real_mem=$((mem_mb * 9 / 10)); [ "$real_mem" -ge 1 ] || real_mem=1
# slurmctld must reach slurmd by the node's name; pin loopback if it does not resolve.
ctld_host="$host"; node_addr=""
if ! getent hosts "$host" >/dev/null 2>&1; then
  ctld_host="$host(127.0.0.1)"; node_addr=" NodeAddr=127.0.0.1"
fi

write_conf() {
  cat <<EOF
$marker
# One-node cluster for Balsam's slurm scheduler. Rewritten by that script when
# this machine changes: delete the first line to keep local edits.
ClusterName=balsam
SlurmctldHost=$ctld_host
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
MailProg=/bin/true
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host${node_addr} CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

conf_changed=0
if [ -f "$conf" ] && ! grep -qxF "$marker" "$conf"; then
  say "using existing $conf as it is (not written by this script)"
else
  mkdir -p "$(dirname "$conf")"
  new=$(write_conf)
  if [ ! -f "$conf" ] || [ "$new" != "$(cat "$conf")" ]; then
    [ -f "$conf" ] && conf_changed=1
    printf '%s\n' "$new" >"$conf.tmp.$$"
    chmod 0644 "$conf.tmp.$$"
    mv -f "$conf.tmp.$$" "$conf"
    say "wrote $conf (node $host, CPUs=$cpus, RealMemory=$real_mem, partition $partition)"
  fi
fi

# Value of KEY in slurm.conf (last one wins), or DEFAULT.
conf_get() {
  local v
  v=$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([^#[:space:]]*\).*/\1/Ip" "$conf" | tail -n 1)
  echo "${v:-$2}"
}
ctld_log=$(conf_get SlurmctldLogFile /var/log/slurm/slurmctld.log)
slurmd_log=$(conf_get SlurmdLogFile /var/log/slurm/slurmd.log)
for d in "$(conf_get StateSaveLocation /var/spool/slurmctld)" \
         "$(conf_get SlurmdSpoolDir /var/spool/slurmd)" \
         "$(dirname "$ctld_log")" "$(dirname "$slurmd_log")" \
         "$(dirname "$(conf_get SlurmctldPidFile /run/slurmctld.pid)")" \
         "$(dirname "$(conf_get SlurmdPidFile /run/slurmd.pid)")"; do
  case "$d" in *%*|"") continue ;; esac
  mkdir -p "$d" || fail "cannot create directory $d"
done

# ---------------------------------------------------------------- daemons
ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }
none_running() { ! running slurmctld && ! running slurmd; }

if [ "$conf_changed" = 1 ] && { running slurmctld || running slurmd; }; then
  say "slurm.conf changed: restarting slurmctld and slurmd"
  timeout 10 scontrol shutdown >/dev/null 2>&1 || true
  wait_for "$wait_s" none_running \
    || fail "slurmctld/slurmd did not stop after 'scontrol shutdown' within ${wait_s}s"
fi

# start_daemon NAME LOG: start NAME unless it runs. Called from the wait loops,
# so a daemon that was still exiting when we looked (just killed) is started
# once it is gone; at most 3 attempts.
declare -A starts=()
start_daemon() {
  running "$1" && return 0
  local n=${starts[$1]:-0}
  [ "$n" -lt 3 ] || return 1
  starts[$1]=$((n + 1))
  say "starting $1"
  "$1" >/dev/null 2>&1 || say "$1 exited with an error at start (see $2)"
  return 0
}
ctld_ready() { start_daemon slurmctld "$ctld_log" && ctld_up; }
slurmd_up() { running slurmd && timeout 10 scontrol show slurmd >/dev/null 2>&1; }
slurmd_ready() { start_daemon slurmd "$slurmd_log" && slurmd_up; }

wait_for "$wait_s" ctld_ready \
  || fail "slurmctld does not answer 'scontrol ping' after ${wait_s}s (see $ctld_log)"
wait_for "$wait_s" slurmd_ready \
  || fail "slurmd does not answer 'scontrol show slurmd' after ${wait_s}s (see $slurmd_log)"

# ---------------------------------------------------------------- node state
# Resume nodes that answer but are down/drained (a trailing * means slurmd is
# not responding yet: ReturnToService=2 brings those back when it registers).
declare -A resumes=()
resume_bad_nodes() {
  local n s
  while read -r n s; do
    case "${s:-}" in
      *'*') ;;
      down*|drain*|fail*)
        [ "${resumes[$n]:-0}" -lt 3 ] || continue
        resumes[$n]=$(( ${resumes[$n]:-0} + 1 ))
        say "node $n is $s: resuming it"
        timeout 10 scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true ;;
    esac
  done <<<"$(node_states)"
}
node_ready() { any_node_ok && return 0; resume_bad_nodes; return 1; }

if ! wait_for "$wait_s" node_ready; then
  states=$(node_states | tr '\n' ' ')
  reason=$(timeout 10 sinfo -h -R -o '%E' 2>/dev/null | head -n 1 || true)
  fail "node not usable after ${wait_s}s: ${states:-sinfo gives no nodes}${reason:+(reason: $reason) }(see $slurmd_log and $ctld_log)"
fi
say "slurm ready: $(node_states | tr '\n' ' ')(default partition: $(timeout 10 sinfo -h -o '%P' 2>/dev/null | grep '\*' | head -n 1 || true))"
exit 0
