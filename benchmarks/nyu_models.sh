#!/bin/bash
# The NYU models on lcd-ecal: trains the four pretrained models on the nyu training
# set, generates each for the conditions of the held-out set, evaluates it against that set (the
# NYU validation and the γ/π⁰ separability are in the report) and prints one row per model and
# particle (its AUC and separation powers from `evaluate --by particle`).
#
#   bash benchmarks/nyu_models.sh TRAIN.h5 HELDOUT.h5 OUT_DIR [MODEL ...]
#
# MODEL: lcd-ecal-lstm, lcd-ecal-lstm-l2, lcd-ecal-wgan-mlp, lcd-ecal-lagan (default: all).
# Steps per model as below (a CPU budget of about 25 minutes of one core each);
# THREADS (default 1) torch threads per training. An existing run in OUT_DIR is resumed, not
# redone, so a larger step count continues it.
set -euo pipefail
train=${1:?usage: nyu_models.sh TRAIN.h5 HELDOUT.h5 OUT_DIR [MODEL ...]}
heldout=${2:?usage: nyu_models.sh TRAIN.h5 HELDOUT.h5 OUT_DIR [MODEL ...]}
out=${3:?usage: nyu_models.sh TRAIN.h5 HELDOUT.h5 OUT_DIR [MODEL ...]}
shift 3
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(lcd-ecal-lstm lcd-ecal-lstm-l2 lcd-ecal-wgan-mlp lcd-ecal-lagan)
repo=$(cd "$(dirname "$0")/.." && pwd)
caloforge=${CALOFORGE:-$repo/.venv/bin/caloforge}
export OMP_NUM_THREADS=${THREADS:-1}
mkdir -p "$out"

declare -A family=([lcd-ecal-lstm]=lstm-lcd [lcd-ecal-lstm-l2]=lstm-lcd
  [lcd-ecal-wgan-mlp]=wgan-mlp-lcd [lcd-ecal-lagan]=lagan-lcd)
declare -A options=([lcd-ecal-lstm]="" [lcd-ecal-lstm-l2]="-o output=l2"
  [lcd-ecal-wgan-mlp]="" [lcd-ecal-lagan]="")
declare -A steps=([lcd-ecal-lstm]=1500 [lcd-ecal-lstm-l2]=1500
  [lcd-ecal-wgan-mlp]=200 [lcd-ecal-lagan]=600)
for name in "${models[@]}"; do
  run=$out/$name
  resume=""
  [ -d "$run" ] && resume=--resume
  n=${steps[$name]}
  # shellcheck disable=SC2086  # the options are words
  "$caloforge" train "${family[$name]}" --data "$train" --out "$run" --steps "$n" \
    --eval-every $((n / 3)) --checkpoint-every 50 --seed 1 -o "name=$name" \
    ${options[$name]} $resume
  "$caloforge" generate "$run" --conditions-from "$heldout" --out "$out/$name.h5" --seed 1 \
    --overwrite
  "$caloforge" evaluate "$out/$name.h5" "$heldout" --out "$out/$name-eval" --quick \
    --by particle
done

"$repo/.venv/bin/python" - "$out" "${models[@]}" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print("| model | particle | E_out/E_in G4 / model | σ/μ G4 / model | spread | fluctuation "
      "| AUC cells | largest SP | γ/π⁰ AUC G4 / model |")
print("|---|---|---|---|---|---|---|---|---|")
for name in sys.argv[2:]:
    m = json.loads((out / f"{name}-eval" / "metrics.json").read_text())
    sep = m["nyu"].get("separability", {}).get("overall", {})
    by = {str(int(row["value"])): row.get("metrics", {}) for row in m["by"]["values"]}
    for code, p in m["nyu"]["particles"].items():
        r, sub = p["response"], by.get(code, m)
        worst = max(sub["separation_power"], key=sub["separation_power"].get)
        print(
            f"| {name} | {p['name']} | {r['mean_ref']:.4f} / {r['mean_gen']:.4f} "
            f"| {r['resolution_ref']:.3f} / {r['resolution_gen']:.3f} "
            f"| {p['spread']['max_relative_difference']:.0%} "
            f"| {p['fluctuation']['max_relative_difference']:.0%} "
            f"| {sub['auc_cells_network']:.3f} | {worst} {sub['separation_power'][worst]:.3f} "
            f"| {sep.get('auc_ref', float('nan')):.3f} / {sep.get('auc_gen', float('nan')):.3f} |"
        )
PY
