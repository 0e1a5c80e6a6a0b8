#!/usr/bin/env bash
# Submit an hpstudy experiment to SLURM: N worker tasks (one job array) and, after all of them
# have ended whatever way (afterany), one job that resumes what they left and writes the report.
#
#   export HPSTUDY_STORAGE=postgresql://USER:PASSWORD@DBHOST:5432/hpstudy
#   hpstudy create studies/digits.toml --no-run        # once, from any machine
#   deploy/slurm/submit.sh digits-mlp 16 [sbatch options, e.g. --partition=cpu --time=2:00:00]
#
# Prints the two job ids (workers, then resume+report). Extra arguments go to both sbatch
# calls. Set HPSTUDY to the hpstudy executable if it is not on the nodes' PATH, and
# HPSTUDY_REPORT to the report's path (default: reports/NAME.html in the submit directory).
set -euo pipefail
usage="usage: deploy/slurm/submit.sh EXPERIMENT N_WORKERS [sbatch options...]"
[[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
name="$1"
n="$2"
shift 2
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N_WORKERS must be a positive integer, got '$n'; $usage" >&2; exit 2; }
[[ -n "${HPSTUDY_STORAGE:-}" ]] || {
    echo "HPSTUDY_STORAGE is not set: export the PostgreSQL storage URL (postgresql://USER:PASSWORD@DBHOST:5432/DB) first; every task reads it" >&2
    exit 2
}
case "$HPSTUDY_STORAGE" in
    sqlite:*|*.db) echo "HPSTUDY_STORAGE is a SQLite file: workers on several nodes need a database server (postgresql://...)" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
command -v sbatch >/dev/null || { echo "sbatch not found: run this on a SLURM login node" >&2; exit 1; }

workers="$(sbatch --parsable --export=ALL --array="0-$((n - 1))" "$@" "$here/worker.sbatch" "$name")"
workers="${workers%%;*}"  # --parsable prints JOBID[;CLUSTER]
finish="$(sbatch --parsable --export=ALL --dependency="afterany:$workers" "$@" "$here/finish.sbatch" "$name")"
finish="${finish%%;*}"
echo "workers: $workers (array 0-$((n - 1)))"
echo "resume+report: $finish (after the workers)"
