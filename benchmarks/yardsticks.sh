#!/bin/bash
# Each detector's yardstick (src/caloforge/evaluation/yardsticks/DETECTOR.json): two independent
# Geant4 samples of the detector's study source (seeds 11 and 12), then
# benchmarks/evaluation_calibration.py on them with --write, which places Geant4 against Geant4
# and the known distortions on the evaluation's headline numbers. The report reads every
# evaluation of that detector on this scale.
#
#   bash benchmarks/yardsticks.sh OUT_DIR [DETECTOR ...]
#
# DETECTOR: atlas-like, lcd-ecal, clic-ecal, par04 (default: all four; lhcb-ecal's was made from
# the held-out and training sets of `make -C datasets lhcb`, 4 000 showers each:
#   python benchmarks/evaluation_calibration.py lhcb-test-10k-seed200.h5 lhcb-train-seed100.h5
#       --n 4000 --write).
# N showers per sample (default per detector below, sized to Geant4's cost on one core), JOBS
# Geant4 workers (default 1). Runs resume: a finished sample is not simulated again.
set -euo pipefail
out=${1:?usage: yardsticks.sh OUT_DIR [DETECTOR ...]}
shift
detectors=("$@")
[ ${#detectors[@]} -eq 0 ] && detectors=(atlas-like lcd-ecal clic-ecal par04)
repo=$(cd "$(dirname "$0")/.." && pwd)
caloforge=${CALOFORGE:-$repo/.venv/bin/caloforge}
python=${PYTHON:-$repo/.venv/bin/python}
mkdir -p "$out"

for detector in "${detectors[@]}"; do
  case $detector in
    atlas-like) source=atlas; n=${N:-1000}; extra=() ;;
    lcd-ecal) source=nyu; n=${N:-1000}; extra=(--energy-range 10GeV:100GeV) ;;
    clic-ecal) source=3dgan; n=${N:-300}; extra=() ;;
    par04) source=par04; n=${N:-1000}; extra=(--energy-range 1GeV:20GeV) ;;
    *) echo "unknown detector $detector" >&2; exit 1 ;;
  esac
  for seed in 11 12; do
    file=$out/$detector-seed$seed.h5
    [ -f "$file" ] && continue
    "$caloforge" simulate "$detector" --source "$source" --n "$n" --seed "$seed" "${extra[@]}" \
      --jobs "${JOBS:-1}" --out "$file" --resume
  done
  "$python" "$repo/benchmarks/evaluation_calibration.py" "$out/$detector-seed11.h5" \
    "$out/$detector-seed12.h5" --n "$n" --write
done
