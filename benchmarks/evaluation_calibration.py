"""Calibrate the yardstick: the metrics of Geant4 against Geant4, and of known distortions.

Two independent Geant4 samples of the same source give the floor (AUC ~ 0.5, separation powers
and FPD/KPD ~ 0). Distorted copies of the second sample (``distortions.DISTORTIONS`` that apply
to the detector: every cell x1.05, every layer blurred by one cell, 20 % of every cell's energy
to its neighbours or to the next ring outward) must be flagged. CaloChallenge's classifier
unless --quick.

Usage: python benchmarks/evaluation_calibration.py REFERENCE.h5 OTHER.h5 [--n 10000] [--quick]
    [--write]
Prints a table and one JSON line; with --write, also the detector's yardstick
(src/caloforge/evaluation/yardsticks/DETECTOR.json), which the report places every evaluation
on. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from caloforge.data.showerfile import ShowerFile, copy_events
from caloforge.errors import CaloforgeError
from caloforge.evaluation.distortions import DISTORTIONS, LABELS, write_distorted
from caloforge.evaluation.evaluate import evaluate
from caloforge.evaluation.yardstick import Point, Yardstick, headline
from caloforge.files import atomic_write_text

YARDSTICKS = Path(__file__).resolve().parents[1] / "src/caloforge/evaluation/yardsticks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path, help="an independent Geant4 sample, same source")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write the detector's yardstick")
    args = parser.parse_args()
    rows, points = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = copy_events(args.reference, tmp / "reference.h5", n=args.n)
        other = copy_events(args.other, tmp / "other.h5", n=args.n)
        cases = {"Geant4 vs Geant4 (floor)": other}
        for name in DISTORTIONS:
            try:
                cases[name] = write_distorted(other, tmp / f"{name}.h5", name)
            except CaloforgeError as exc:  # a distortion of another geometry
                print(f"skipped {name}: {exc}")
        for label, path in cases.items():
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = evaluate(
                    path, reference, seed=args.seed, quick=args.quick, allow_condition_mismatch=True
                ).metrics
            worst = max(m["separation_power"], key=m["separation_power"].get)
            name = "Geant4 against Geant4" if path == other else LABELS[label]
            points.append(Point(label=name, values=headline(m)))
            rows.append(
                {
                    "case": label,
                    "n": m["n_generated"],
                    "auc_low": m["auc_cells_network"],
                    "auc_high": m["auc_features"],
                    "fpd_1e3": m["fpd_x1e3"],
                    "fpd_err_1e3": m["fpd_x1e3_err"],
                    "kpd_1e3": m["kpd_x1e3"],
                    "kpd_err_1e3": m["kpd_x1e3_err"],
                    "sep_E_tot": m["separation_power"]["E_tot"],
                    "worst_feature": worst,
                    "worst_sep": m["separation_power"][worst],
                    "seconds": time.perf_counter() - started,
                }
            )
    print(
        f"{'case':26s} {'n':>6s} {'AUC low':>8s} {'AUC high':>8s} {'FPD x1e3':>16s} "
        f"{'KPD x1e3':>16s} {'sep E_tot':>9s}  worst feature"
    )
    for r in rows:
        print(
            f"{r['case']:26s} {r['n']:6d} {r['auc_low']:8.3f} {r['auc_high']:8.3f} "
            f"{r['fpd_1e3']:8.3f}±{r['fpd_err_1e3']:<7.3f} "
            f"{r['kpd_1e3']:8.4f}±{r['kpd_err_1e3']:<7.4f} "
            f"{r['sep_E_tot']:9.4f}  {r['worst_feature']} ({r['worst_sep']:.3f})"
        )
    print(json.dumps(rows))
    if args.write:
        detector = ShowerFile(args.reference).detector.name
        classifier = "the quick classifier" if args.quick else "CaloChallenge's classifier"
        yardstick = Yardstick(
            detector=detector,
            n_showers=rows[0]["n"],
            measured=(
                f"{rows[0]['n']} against {rows[0]['n']} showers of {args.reference.name} and "
                f"{args.other.name}, {classifier}, seed {args.seed}: python "
                "benchmarks/evaluation_calibration.py REFERENCE OTHER "
                f"--n {args.n}{' --quick' if args.quick else ''} --write"
            ),
            floor=points[0],
            distortions=points[1:],
        )
        path = YARDSTICKS / f"{detector}.json"
        atomic_write_text(path, yardstick.model_dump_json(indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
