#!/usr/bin/env bash
# Start a one-node SLURM with accounting on this machine: munge, MariaDB, slurmdbd, slurmctld,
# slurmd. For tests and for trying the slurm profile; not a production cluster.
#
# Needs root and a Debian-like system (packages come from apt if missing; Debian 12 ships Slurm
# 22.05). No systemd needed: every daemon is started by hand, detached, and its pid file is listed
# in $STATE/started so that scripts/slurm/stop.sh ends exactly the daemons started here.
# The node is "localhost" on 127.0.0.1 with all CPUs, most of the memory and one GPU GRES backed
# by a stand-in device file (there is no GPU here: it lets GPU-requesting jobs schedule).
#
# Exit status: 0 when the node is idle, 77 when this machine cannot run the daemons (not root,
# no apt and no binaries), anything else on failure.
set -euo pipefail

STATE=${SENORITA_SLURM_STATE:-/var/lib/senorita-slurm}
CLUSTER=${SENORITA_SLURM_CLUSTER:-senorita}
ACCOUNT=${SENORITA_SLURM_ACCOUNT:-senorita}
PARTITION=${SENORITA_SLURM_PARTITION:-debug}
GPU_FILE=$STATE/fake-gpu0
MARK="# written by senorita scripts/slurm/start.sh"
LOG=$STATE/log

say() { echo "slurm-start: $*" >&2; }
cannot() { say "cannot run here: $*"; exit 77; }

[ "$(uname -s)" = Linux ] || cannot "not Linux"
[ "$(id -u)" = 0 ] || cannot "needs root (daemons, /etc/slurm, apt)"

need=(munged mariadbd slurmdbd slurmctld slurmd sbatch sacct sacctmgr scontrol sinfo)
missing=()
for cmd in "${need[@]}"; do
  PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || cannot "missing ${missing[*]} and no apt-get to install them"
  say "installing Slurm, munge and MariaDB from apt (missing: ${missing[*]})"
  # Keep package scripts from starting services through invoke-rc.d: we start our own, tracked.
  policy_added=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server >"$STATE.apt.log" 2>&1 \
    || { tail -20 "$STATE.apt.log" >&2; [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
fi
export PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$STATE" "$LOG" "$STATE/ctld" "$STATE/d" /etc/slurm
touch "$STATE/started"

# A started daemon is "ours" if its pid file is listed in $STATE/started and the pid is alive.
ours_running() {
  local name=$1 pidfile=$2 pid
  grep -qx "$name $pidfile" "$STATE/started" || return 1
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -d "/proc/$pid" ]
}

# Detached: own session, stdio to a log, no inherited descriptors (else a caller reading our
# output, such as pytest, waits for the daemons to exit).
launch() {
  local name=$1 pidfile=$2
  shift 2
  setsid -f "$@" </dev/null >>"$LOG/$name.out" 2>&1
  grep -qx "$name $pidfile" "$STATE/started" || echo "$name $pidfile" >>"$STATE/started"
}

wait_for() {
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  say "$what did not come up within ${seconds}s; logs in $LOG"
  for f in "$LOG"/*; do echo "== $f" && tail -n 20 "$f"; done >&2
  exit 1
}

write_conf() { # path mode: write stdin to path unless path is someone else's config
  local path=$1 mode=$2 tmp
  if [ -e "$path" ] && ! head -n 1 "$path" | grep -qxF "$MARK"; then
    say "$path exists and was not written by this script; not overwriting it"
    say "(move it away, or point SENORITA_SLURM_STATE elsewhere and use your cluster)"
    exit 1
  fi
  tmp=$(mktemp "$path.XXXXXX")
  { echo "$MARK"; cat; } >"$tmp"
  chmod "$mode" "$tmp"
  mv "$tmp" "$path"
}

# --- configuration -----------------------------------------------------------------------------
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours both; a caller may set them for its own threads
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
: >"$GPU_FILE"

write_conf /etc/slurm/slurm.conf 644 <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# No cgroups here (no systemd): track processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# Accounting through slurmdbd: the snakemake plugin polls sacct. Store comments: they name the
# rule (and wildcards) each job ran.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SlurmdTimeout=60
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# A count-only GPU is dropped by slurmd: the GRES must name a device file.
write_conf /etc/slurm/gres.conf 644 <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$GPU_FILE
EOF

# slurmdbd refuses a readable config (it holds database credentials).
write_conf /etc/slurm/slurmdbd.conf 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=${CLUSTER}_acct_db
EOF

# --- munge ---------------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munge already running"
else
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
  launch munged /run/munge/munged.pid runuser -u munge -- munged --foreground
  wait_for munged 20 sh -c 'munge -n | unmunge'
fi
# munged --foreground writes its pid file itself.

# --- MariaDB (socket only: nothing listens on the network) ---------------------------------------
# mariadbd runs as mysql: its pid file lives in its own run folder.
MYSQL_PID=/run/mysqld/senorita-mariadbd.pid
if ours_running mariadbd "$MYSQL_PID"; then
  say "mariadbd already running"
elif mariadb-admin ping >/dev/null 2>&1; then
  say "a MariaDB not started by this script answers on the default socket; using it"
else
  install -d -o mysql -g root -m 755 /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$LOG/mariadb-install.out" 2>&1
  launch mariadbd "$MYSQL_PID" mariadbd --user=mysql --skip-networking --pid-file="$MYSQL_PID"
  wait_for mariadbd 60 mariadb-admin ping
fi

# --- slurmdbd, then the cluster, account and user in the accounting database --------------------
if ours_running slurmdbd "$STATE/slurmdbd.pid"; then
  say "slurmdbd already running"
else
  launch slurmdbd "$STATE/slurmdbd.pid" slurmdbd -D
  wait_for slurmdbd 60 sacctmgr -n list cluster
fi
sacctmgr -n list cluster format=cluster%64 | grep -qw "$CLUSTER" \
  || sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n list account format=account%64 | grep -qw "$ACCOUNT" \
  || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=senorita Organization=senorita >/dev/null
for user in root ${SUDO_USER:-}; do
  sacctmgr -n list assoc user="$user" account="$ACCOUNT" format=user%64 | grep -qw "$user" \
    || sacctmgr -i add user "$user" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
done

# --- slurmctld and slurmd ------------------------------------------------------------------------
if ours_running slurmctld "$STATE/slurmctld.pid"; then
  say "slurmctld already running; rereading its configuration"
  scontrol reconfigure || true
else
  launch slurmctld "$STATE/slurmctld.pid" slurmctld -D
  wait_for slurmctld 60 scontrol ping
fi
if ours_running slurmd "$STATE/slurmd.pid"; then
  say "slurmd already running"
else
  # -N: the node is "localhost" whatever this machine's hostname is.
  launch slurmd "$STATE/slurmd.pid" slurmd -D -N localhost
fi

node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1; }
for _ in $(seq 240); do
  state=$(node_state)
  case $state in
    idle | mixed | allocated) break ;;
    drain* | down*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.25
done
state=$(node_state)
case $state in
  idle | mixed | allocated) ;;
  *)
    say "node localhost is '$state', not idle, after 60s; logs in $LOG"
    scontrol show node localhost >&2 || true
    for f in "$LOG"/slurmd.log "$LOG"/slurmctld.log; do echo "== $f" && tail -n 20 "$f"; done >&2
    exit 1
    ;;
esac
say "node localhost is $state: partition $PARTITION, account $ACCOUNT, $cpus CPUs, ${mem_mb} MB, gpu:1"
