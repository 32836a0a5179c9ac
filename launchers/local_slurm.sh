#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests and CI (no systemd needed).
#
#   sudo bash launchers/local_slurm.sh start    # install (Debian packages), configure, start; wait until idle
#   sudo bash launchers/local_slurm.sh stop     # cancel jobs, stop the daemons, remove state and config
#   bash launchers/local_slurm.sh status
#
# Daemons: munged, mariadbd + slurmdbd (so that `sacct` works; submitit needs it to see a job
# that died hard), slurmctld and slurmd, all run as root from this script. Both `start` and
# `stop` are idempotent. Everything this script writes lives under $GSI_SLURM_STATE
# (default /var/lib/gsi-slurm) plus /etc/slurm/{slurm,slurmdbd}.conf, which it marks as its own.
set -euo pipefail

STATE=${GSI_SLURM_STATE:-/var/lib/gsi-slurm}
CONF_DIR=/etc/slurm
MARK="# written by gsi launchers/local_slurm.sh"
CLUSTER=gsi
DB=slurm_acct_db
DB_USER=slurm
DB_PASS=gsi-local-slurm
MYSQL_SOCK=/run/mysqld/mysqld.sock
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
SINFO_TIMEOUT=${GSI_SLURM_WAIT_S:-60}

die() { echo "local_slurm: $*" >&2; exit 1; }
say() { echo "local_slurm: $*"; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root and packages may need installing): sudo bash $0 $1"
}

pid_alive() {  # pidfile -> 0 if the process in it runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # seconds description command...
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and there is no apt-get: install SLURM 22.05+, munge, slurmdbd and MariaDB by hand"
    say "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${missing[@]}" >"$STATE/apt.log" 2>&1; then
        apt-get update -qq >>"$STATE/apt.log" 2>&1 || die "apt-get update failed (no network or no apt sources?): see $STATE/apt.log"
        apt-get install -y -qq "${missing[@]}" >>"$STATE/apt.log" 2>&1 \
            || die "apt-get install ${missing[*]} failed: see $STATE/apt.log"
    fi
}

write_configs() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    for f in slurm.conf slurmdbd.conf; do
        if [ -e "$CONF_DIR/$f" ] && ! grep -qF "$MARK" "$CONF_DIR/$f"; then
            die "$CONF_DIR/$f exists and was not written by this script: refusing to overwrite a real cluster's config"
        fi
    done
    mkdir -p "$CONF_DIR" "$STATE"/{ctld,spool,log}
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# short job credentials: a requeued job may restart after cred_expire seconds (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
# \`stop\` wipes the controller's state; start job ids from the clock so that a restarted
# cluster never reuses a job id whose submitit folder (.submitit/<id>) already exists
FirstJobId=$(( $(date +%s) % 50000000 + 1 ))
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, each job would claim the whole node's memory and jobs would run one at a time
DefMemPerCPU=1024
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
KillWait=5
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB
StorageUser=$DB_USER
StoragePass=$DB_PASS
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
    pid_alive "$STATE/munge/munged.pid" && return 0
    [ -s /etc/munge/munge.key ] || mungekey --create --force >/dev/null
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge
    mkdir -p "$STATE/munge" && chown munge:munge "$STATE/munge"
    runuser -u munge -- munged --force --pid-file="$STATE/munge/munged.pid"
    wait_for 10 munge bash -c 'munge -n | unmunge' || die "munged did not start (see /var/log/munge/munged.log)"
}

start_mariadb() {
    if ! pid_alive "$STATE/mysql/mariadb.pid"; then
        mkdir -p /run/mysqld "$STATE/mysql" && chown mysql:mysql /run/mysqld "$STATE/mysql"
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed: see $STATE/log/mariadb-install.log"
        mariadbd --user=mysql --socket=$MYSQL_SOCK --pid-file="$STATE/mysql/mariadb.pid" --skip-networking \
            >"$STATE/log/mariadb.log" 2>&1 &
        wait_for 30 mariadb mariadb --socket=$MYSQL_SOCK -e 'select 1' \
            || die "mariadbd did not start: see $STATE/log/mariadb.log"
    fi
    mariadb --socket=$MYSQL_SOCK -e "CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON $DB.* TO '$DB_USER'@'localhost'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
    if ! pid_alive "$STATE/slurmdbd.pid"; then
        slurmdbd || die "slurmdbd failed to start: see $STATE/log/slurmdbd.log"
    fi
    wait_for 30 slurmdbd timeout 5 sacctmgr -n list cluster \
        || die "slurmdbd does not answer: see $STATE/log/slurmdbd.log"
    if ! timeout 5 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr could not register cluster $CLUSTER"
    fi
}

node_idle() {
    timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
    need_root start
    mkdir -p "$STATE/log"
    if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid" && node_idle; then
        say "already running: $(timeout 5 sinfo -h -N -o '%N %T %c CPUs')"
        return 0
    fi
    install_packages
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    pid_alive "$STATE/slurmctld.pid" || slurmctld || die "slurmctld failed to start: see $STATE/log/slurmctld.log"
    pid_alive "$STATE/slurmd.pid" || slurmd || die "slurmd failed to start: see $STATE/log/slurmd.log"
    if ! wait_for "$SINFO_TIMEOUT" sinfo node_idle; then
        timeout 5 scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        wait_for 10 sinfo node_idle || die "the node did not become idle within ${SINFO_TIMEOUT}s: \
$(timeout 5 sinfo -h -N -o '%N %T %E' 2>&1 | head -1); see $STATE/log/"
    fi
    say "up: $(timeout 5 sinfo -h -N -o '%N %T %c CPUs %m MB') (logs in $STATE/log)"
}

stop_pidfile() {  # name pidfile
    local pid
    pid_alive "$2" || { rm -f "$2"; return 0; }
    pid=$(cat "$2")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$1 ($pid) ignores SIGTERM: killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$2"
}

stop() {
    need_root stop
    if pid_alive "$STATE/slurmctld.pid"; then
        timeout 10 scancel --quiet --full --state=RUNNING,PENDING --user=root >/dev/null 2>&1 || true
        timeout 10 scancel --quiet --user="$(id -un)" >/dev/null 2>&1 || true
    fi
    stop_pidfile slurmd "$STATE/slurmd.pid"
    stop_pidfile slurmctld "$STATE/slurmctld.pid"
    stop_pidfile slurmdbd "$STATE/slurmdbd.pid"
    if pid_alive "$STATE/mysql/mariadb.pid"; then
        mariadb --socket=$MYSQL_SOCK -e "DROP DATABASE IF EXISTS $DB;" >/dev/null 2>&1 || true
    fi
    stop_pidfile mariadbd "$STATE/mysql/mariadb.pid"
    stop_pidfile munged "$STATE/munge/munged.pid"
    for f in slurm.conf slurmdbd.conf; do
        if [ -e "$CONF_DIR/$f" ] && grep -qF "$MARK" "$CONF_DIR/$f"; then rm -f "$CONF_DIR/$f"; fi
    done
    rm -rf "$STATE/ctld" "$STATE/spool"
    say "stopped (logs kept in $STATE/log)"
}

status() {
    for f in munge/munged mysql/mariadb slurmdbd slurmctld slurmd; do
        if pid_alive "$STATE/$f.pid"; then echo "${f#*/}: running ($(cat "$STATE/$f.pid"))"; else echo "${f#*/}: stopped"; fi
    done
    if node_idle; then timeout 5 sinfo -N 2>/dev/null; else echo "sinfo: no usable node"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: bash $0 start|stop|status" >&2; exit 2 ;;
esac
