#!/bin/bash
# The 3DGAN loss ablation: the same short gan-3d run with and without the seed's
# deposited-energy (L_E) and pixel-spectrum (L_B) losses, each generated for the conditions of
# a held-out file and judged by the 3DGAN validation of `caloforge evaluate`.
#
#   bash benchmarks/gan3d_ablation.sh TRAIN.h5 HELDOUT.h5 OUT_DIR
#
# STEPS (default 120), BATCH (16) and OPTIONS (the network size; default the CPU size of
# clic-ecal-3dgan) may be set in the environment. An existing run in OUT_DIR is resumed, not
# redone. Prints one table row per variant.
set -euo pipefail
train=${1:?usage: gan3d_ablation.sh TRAIN.h5 HELDOUT.h5 OUT_DIR}
heldout=${2:?usage: gan3d_ablation.sh TRAIN.h5 HELDOUT.h5 OUT_DIR}
out=${3:?usage: gan3d_ablation.sh TRAIN.h5 HELDOUT.h5 OUT_DIR}
steps=${STEPS:-120}
batch=${BATCH:-16}
options=${OPTIONS:--o discriminator_filters=8 -o generator_filters=[16,6,6]}
repo=$(cd "$(dirname "$0")/.." && pwd)
caloforge=${CALOFORGE:-$repo/.venv/bin/caloforge}
mkdir -p "$out"

declare -A losses=([with]="" [without]="-o sum_weight=0 -o spectrum_weight=0")
for variant in with without; do
  run=$out/$variant
  resume=""
  [ -d "$run" ] && resume=--resume
  # shellcheck disable=SC2086  # the options are words
  "$caloforge" train gan-3d --data "$train" --out "$run" --steps "$steps" --batch-size "$batch" \
    --eval-every 40 --checkpoint-every 20 --seed 1 $options ${losses[$variant]} $resume
  "$caloforge" generate "$run" --conditions-from "$heldout" --out "$out/$variant.h5" --seed 1 \
    --overwrite
  "$caloforge" evaluate "$out/$variant.h5" "$heldout" --out "$out/$variant-eval" --no-classifier
done

"$repo/.venv/bin/python" - "$out" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print("| L_E, L_B | E_tot/E_p, worst E_p bin | cell spectrum | profiles | max abs dρ | largest SP |")
print("|---|---|---|---|---|---|")
for variant in ("with", "without"):
    m = json.loads((out / f"{variant}-eval" / "metrics.json").read_text())
    c = m["clic"]
    worst = max(m["separation_power"], key=m["separation_power"].get)
    print(
        f"| {variant} | {c['response']['max_relative_difference']:.1%} "
        f"| {c['cell_spectrum']['max_relative_difference']:.1%} "
        f"| {c['profiles']['max_relative_difference']:.0%} "
        f"| {c['correlation']['max_abs_difference']:.2f} "
        f"| {worst} {m['separation_power'][worst]:.3f} |"
    )
PY
