// The watchdog's bash script (runner.ts starts it beside every launcher).

/**
 * The watchdog: told `+ PGID [OUTFILE]` / `- PGID` on its stdin as jobs start
 * and end, `! PGID` to sweep a job now, and `d WALL_US PGID...` to set the
 * fence deadline of jobs (wall clock, µs: bash has no monotonic clock) when
 * no spawn helper keeps them. A spawn helper's jobs are not told one by one:
 * `t FILE` names the helper's job table (native/balsam-spawn.c: a line per
 * live job's pid, blank when free), read when it is needed; `T FILE` sweeps
 * the jobs a table lists now and forgets it (that helper died). Its stdin
 * reaches EOF when the launcher dies however it dies (kill -9 included), and
 * then it sweeps every job still registered or listed, and removes the tables. A sweep SIGKILLs the job's process group, then — for up to
 * three rounds, catching processes forked meanwhile — every process whose
 * session is the job's: mpirun (Open MPI 4.1 measured here) gives each local
 * rank its own process group in the job's session. A job past its deadline is
 * swept and its output file told so, whether or not the launcher is frozen.
 * Signals a terminal or a group kill would send are ignored so it outlives
 * the launcher.
 */
export const WATCHDOG = `
trap '' INT TERM HUP PIPE
sweep() {
  local -A ids=()
  local id f line found round
  for id; do ids[$id]=1; kill -KILL -- "-$id" 2>/dev/null; done
  for round in 1 2 3; do
    found=0
    for f in /proc/[0-9]*/stat; do
      { read -r line < "$f"; } 2>/dev/null || continue
      set -- \${line##*) }
      [[ $1 == Z ]] && continue
      if [[ \${ids[$4]} || \${ids[$3]} ]]; then kill -KILL "\${f//[^0-9]/}" 2>/dev/null && found=1; fi
    done
    (( found )) || break
  done
}
fence() {
  sweep "$1"
  [[ \${outs[$1]} ]] && echo "balsam: fenced at $(date -u +%FT%TZ): the launcher could not renew this job's lease in time; its processes were killed so that it never runs twice at once" >> "\${outs[$1]}" 2>/dev/null
  unset "groups[$1]" "deadline[$1]" "outs[$1]"
}
listed() {
  local id
  while read -r id; do [[ $id ]] && printf '%s ' "$id"; done < "$1" 2>/dev/null
}
declare -A groups=() deadline=() outs=() tables=()
while :; do
  tmo=
  if (( \${#deadline[@]} )); then
    now=\${EPOCHREALTIME/./} next=
    for id in "\${!deadline[@]}"; do
      d=\${deadline[$id]}
      if (( d <= now )); then fence "$id"; elif [[ -z $next ]] || (( d < next )); then next=$d; fi
    done
    [[ $next ]] && printf -v tmo '%d.%06d' $(( (next - now) / 1000000 )) $(( (next - now) % 1000000 ))
  fi
  if read -r \${tmo:+-t "$tmo"} op id rest; then
    case $op in
      +) groups[$id]=1; [[ $rest ]] && outs[$id]=$rest ;;
      -) unset "groups[$id]" "deadline[$id]" "outs[$id]" ;;
      !) sweep "$id" ;;
      d) for g in $rest; do [[ \${groups[$g]} ]] && deadline[$g]=$id; done ;;
      t) tables[$id]=1 ;;
      T) ids=$(listed "$id"); [[ $ids ]] && sweep $ids; unset "tables[$id]"; rm -f -- "$id" ;;
    esac
  elif (( $? <= 128 )); then break
  fi
done
ids=
for t in "\${!tables[@]}"; do ids+=$(listed "$t"); done
all=("\${!groups[@]}" $ids)
(( \${#all[@]} )) && sweep "\${all[@]}"
(( \${#tables[@]} )) && rm -f -- "\${!tables[@]}"
exit 0
`;
