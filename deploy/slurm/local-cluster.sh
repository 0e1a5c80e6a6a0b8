#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages (slurmctld, slurmd, munge),
# for trying deploy/slurm/ and for the tests (tests/deploy/test_slurm.py, run by .ci/run).
# Needs root. Idempotent: a cluster this script started is left running and reused.
#
#   deploy/slurm/local-cluster.sh          # install if missing, configure, start; waits until idle
#   deploy/slurm/local-cluster.sh --stop   # stop the daemons it started
#
# The node offers HPSTUDY_SLURM_CPUS CPUs (default 8, whatever the machine has: tiny test
# trials share the cores), one per array task.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
CPUS="${HPSTUDY_SLURM_CPUS:-8}"
NODE="$(hostname -s)"

if [[ "${1:-}" == "--stop" ]]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    exit 0
fi

[[ "$(id -u)" == 0 ]] || { echo "local-cluster.sh must run as root (it starts system daemons)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    echo "installing Debian's slurmctld, slurmd, slurm-client and munge..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

# munge: the key comes with the package; the daemon runs as its own user.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
[[ -s /etc/munge/munge.key ]] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; }
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# No cgroups in a container: processes are tracked by parent pid (linuxproc), and the node
# may offer more CPUs than the machine has (config_overrides).
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
cat > "$CONF.new" <<CONFEOF
# Written by hpstudy's deploy/slurm/local-cluster.sh: a one-node cluster for tests.
ClusterName=hpstudy
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
KillWait=30
MinJobAge=600
NodeName=$NODE CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF
changed=1
if [[ -f "$CONF" ]] && cmp -s "$CONF" "$CONF.new"; then changed=0; fi
mv "$CONF.new" "$CONF"

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [[ "$changed" == 1 ]]; then  # a new configuration: restart what runs with the old one
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
    done
fi
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd

for _ in $(seq 60); do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
    case "$state" in
        idle|mixed|allocated) echo "SLURM node $NODE is $state ($CPUS CPUs)"; exit 0 ;;
        down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "the SLURM node $NODE did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
