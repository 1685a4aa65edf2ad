#!/usr/bin/env bash
# Stop the daemons that scripts/slurm/start.sh started, and only those: it lists each one's pid
# file in $STATE/started. Daemons that were already running before (a system munge, say) stay.
# Slurm state and the accounting database stay on disk, so a later start resumes them.
set -uo pipefail

STATE=${SENORITA_SLURM_STATE:-/var/lib/senorita-slurm}
say() { echo "slurm-stop: $*" >&2; }

[ -s "$STATE/started" ] || { say "nothing to stop (no $STATE/started)"; exit 0; }

# Jobs first, so that slurmd does not leave job processes behind.
if command -v scancel >/dev/null && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
  scancel --full --quiet $(squeue -h -o %i) 2>/dev/null || true
  sleep 1
fi

# Reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
tac "$STATE/started" | while read -r name pidfile; do
  pid=$(cat "$pidfile" 2>/dev/null) || { say "$name: no pid file $pidfile"; continue; }
  # The pid must still be that daemon (pids are reused).
  if [ ! -d "/proc/$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    say "$name (pid $pid) is not running"
    continue
  fi
  kill -TERM "$pid"
  for _ in $(seq 120); do
    [ -d "/proc/$pid" ] || break
    sleep 0.25
  done
  if [ -d "/proc/$pid" ]; then
    say "$name (pid $pid) ignored SIGTERM for 30s; killing it"
    kill -KILL "$pid" 2>/dev/null
  fi
  say "stopped $name (pid $pid)"
done
: >"$STATE/started"
