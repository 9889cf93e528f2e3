#!/bin/bash
# Run deploy/slurm's recipes once for real on a one-node Slurm on this machine (Debian's
# slurm-wlm: munged, slurmctld and slurmd on localhost, configured here), then stop it.
#
#   sudo-able shell: bash benchmarks/slurm_onenode.sh OUT_DIR
#
# 1. simulate-array.sbatch: a 4-task job array simulating 4 shards of 120 lhcb-ecal events,
#    merged afterwards and compared with the unsharded run (they must be identical);
# 2. train.sbatch: a 1-node, 2-process data-parallel training of a tiny flow-matching model on
#    the merged file.
# Prints what each job did and its wall time. Never run as a test: it installs and starts system
# daemons. Needs root (apt-get, munged, slurmd).
set -euo pipefail
out=$(realpath -m "${1:?usage: slurm_onenode.sh OUT_DIR}")
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
command -v slurmctld >/dev/null || apt-get install -y -q slurm-wlm >/dev/null
host=$(hostname -s)
cpus=$(nproc)
etc=/etc/slurm
mkdir -p "$etc" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > "$etc/slurm.conf" <<CONF
ClusterName=caloforge
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
[ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || \
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1k count=1 2>/dev/null
chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break; sleep 1; done
sinfo
cleanup() { scancel -u root 2>/dev/null || true; pkill -x slurmd || true; pkill -x slurmctld || true; }
trap cleanup EXIT

wait_job() {  # job id -> waits until it and its array tasks have left the queue
  while squeue -h -j "$1" 2>/dev/null | grep -q .; do sleep 2; done
  sacct -j "$1" >/dev/null 2>&1 || true
}

cd "$repo"
start=$(date +%s)
job=$(sbatch --parsable --array=0-3 --chdir="$repo" --output="$out/simulate-%A_%a.log" \
  deploy/slurm/simulate-array.sbatch lhcb-ecal lhcb 120 7 "$out/shards")
wait_job "$job"
echo "simulate array $job: $(( $(date +%s) - start )) s"
.venv/bin/caloforge merge "$out"/shards/shard-*.h5 --out "$out/merged.h5" --overwrite
.venv/bin/caloforge simulate lhcb-ecal --source lhcb --n 120 --seed 7 --out "$out/whole.h5" --overwrite
.venv/bin/python - "$out" <<'PY'
import sys, numpy as np
from caloforge.data.showerfile import ShowerFile
a, b = (ShowerFile(f"{sys.argv[1]}/{n}.h5").read() for n in ("merged", "whole"))
assert np.array_equal(a.showers, b.showers), "the Slurm array's shards differ from the whole run"
print(f"merged shards == unsharded run: {len(a)} events identical")
PY

start=$(date +%s)
job=$(NPROC=2 sbatch --parsable --nodes=1 --cpus-per-task=2 --chdir="$repo" \
  --export=ALL,NPROC=2 --output="$out/train-%j.log" deploy/slurm/train.sbatch flow-matching \
  "$out/merged.h5" "$out/model" --steps 4 --batch-size 8 --eval-every 4 --checkpoint-every 4 \
  --overwrite -o hidden=32 -o blocks=1)
wait_job "$job"
echo "train job $job: $(( $(date +%s) - start )) s"
tail -n 3 "$out/train-$job.log"
test -f "$out/model/model.safetensors" && echo "model directory written by rank 0"
