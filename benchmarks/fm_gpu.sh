#!/usr/bin/env bash
# The lhcb-ecal flow-matching teacher and student, trained on one CUDA GPU in a fixed budget.
#
# Usage: benchmarks/fm_gpu.sh TRAIN.h5 OUT [TEACHER_MINUTES]
#
# 1. A 60-second probe of every teacher variant below, side by side on the GPU, gives each its
#    steps per second; each is then trained with as many steps as fit TEACHER_MINUTES (default
#    5), all at once (the networks are small: the GPU runs them side by side at little cost).
# 2. The variant with the lowest held-out mean separation power (the training loop's own score,
#    on the training file's held-out 10 %) is the teacher; a one-step student is distilled
#    from it.
# 3. OUT/teachers.tsv lists every variant's options, steps and best score.
#
# Each variant is `caloforge train flow-matching ... --device cuda`, so any line of the log can
# be rerun alone; the shipped CPU teacher (lhcb-ecal-fm 1.2.0) is variant `mlp1024` trained for
# 6 000 steps of 512 on two CPU threads. Not yet run on a GPU (none lent so far): run end to end
# with DEVICE=cpu and tiny networks only.
set -uo pipefail
data=$1
out=$2
minutes=${3:-5}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
probe=${PROBE_MINUTES:-1}
mkdir -p "$out"

declare -A variants=(
    [mlp1024]="-o hidden=1024 -o blocks=3 --batch-size 1024"
    [mlp1536]="-o hidden=1536 -o blocks=3 --batch-size 1024"
    [mlp1536-w1000]="-o hidden=1536 -o blocks=3 -o response_weight=1000 --batch-size 1024"
    [mlp1536-b4096]="-o hidden=1536 -o blocks=3 --batch-size 4096"
)
common=(--data "$data" --seed 1 --device "$device" -o sample_steps=4)
threads=$(($(nproc) / ${#variants[@]} > 0 ? $(nproc) / ${#variants[@]} : 1))

teacher() {  # name steps eval_every extra...
    local name=$1 steps=$2 every=$3
    shift 3
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$threads $py -m caloforge train flow-matching "${common[@]}" \
        --out "$out/$name" --steps "$steps" --eval-every "$every" \
        --checkpoint-every "$every" --overwrite ${variants[$name]} "$@" \
        >"$out/$name.log" 2>&1
}

echo "probe: ${#variants[@]} variants side by side for $probe min"
for name in "${!variants[@]}"; do
    teacher "$name" 1000000 1000000 --max-time "$probe" &
done
wait
declare -A steps
for name in "${!variants[@]}"; do
    rate=$($py - "$out/$name/training_log.jsonl" <<'EOF'
import json, sys
rows = [json.loads(x) for x in open(sys.argv[1]) if '"seconds"' in x]
last = rows[-1]
first = rows[len(rows) // 4] if len(rows) > 1 else {"step": 0, "seconds": 0.0}
print((last["step"] - first["step"]) / (last["seconds"] - first["seconds"]))
EOF
    ) || { echo "probe of $name failed:"; tail -3 "$out/$name.log"; exit 1; }
    steps[$name]=$($py -c "print(max(1000, int($rate * 60 * $minutes * 0.92) // 1000 * 1000))")
    echo "$name: $rate steps/s -> ${steps[$name]} steps"
done

for name in "${!variants[@]}"; do
    teacher "$name" "${steps[$name]}" $((steps[$name] / 8)) &
done
wait
printf 'variant\toptions\tsteps\tbest_step\tbest_holdout_sp\n' >"$out/teachers.tsv"
for name in "${!variants[@]}"; do
    $py - "$out/$name" "$name" "${variants[$name]}" >>"$out/teachers.tsv" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
log = [json.loads(x) for x in (d / "training_log.jsonl").open()]
scores = [(r["holdout_mean_separation_power"], r["step"]) for r in log if "holdout_mean_separation_power" in r]
best = min(scores) if scores else (float("nan"), -1)
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{log[-1]['step']}\t{best[1]}\t{best[0]:.5f}")
EOF
done
cat "$out/teachers.tsv"
best=$(tail -n +2 "$out/teachers.tsv" | sort -t$'\t' -k5,5g | head -1 | cut -f1)
[ -f "$out/$best/metrics.json" ] || { echo "no finished teacher"; exit 1; }
echo "teacher: $best"

student() {
    OMP_NUM_THREADS=$(nproc) $py -m caloforge train flow-matching-student --data "$data" \
        --out "$out/student" "$@" >>"$out/student.log" 2>&1 || { tail -3 "$out/student.log"; exit 1; }
}
student --seed 1 --device "$device" --steps "${STUDENT_STEPS:-30000}" --batch-size 1024 \
    --eval-every 5000 --checkpoint-every 5000 --max-time 3 --overwrite -o teacher="$out/$best"
if [ ! -f "$out/student/metrics.json" ]; then  # stopped by --max-time: finish where it is
    student --resume --steps "$(tail -1 "$out/student/training_log.jsonl" | $py -c \
        'import json, sys; print(json.load(sys.stdin)["step"])')"
fi
tail -1 "$out/student.log"
