"""caloforge's evaluation beside CaloChallenge's own code, on the same pairs of par04 files.

Usage:
    python benchmarks/calochallenge_crosscheck.py --calochallenge-code DIR REFERENCE.h5 OTHER.h5

DIR is a checkout of github.com/CaloChallenge/homepage that you fetched (its ``code/`` folder:
evaluate.py, HighLevelFeatures.py, XMLHandler.py, binning_dataset_2.xml); nothing of it is part of
caloforge. REFERENCE and OTHER are independent ``caloforge simulate par04`` files of the same
source (``make -C datasets par04``). Two pairs are compared: OTHER against REFERENCE (the floor)
and OTHER with 20 % of every cell's energy moved one ring outward against REFERENCE.

Each pair is written in CaloChallenge's units (``caloforge convert --to calochallenge``) and
scored by both:
- caloforge: ``evaluate --protocol calochallenge``;
- CaloChallenge: its ``HighLevelFeatures`` and plotting helper's separation powers (run as its
  ``evaluate.py --mode hist-chi``), its DNN classifier trained and calibrated by its own
  functions on a 60/20/20 split (its script's fixed split sizes assume 100 000 events), and
  jetnet's FPD/KPD on its feature array when jetnet is importable (else marked n/a).

Run it with an interpreter that has caloforge, and for the FPD/KPD column also jetnet
(``pip install jetnet``). Prints a table and one JSON line. Never run as a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import h5py
import numpy as np

from caloforge.data.formats import to_calochallenge
from caloforge.data.showerfile import copy_head
from caloforge.evaluation.distortions import write_distorted
from caloforge.evaluation.evaluate import evaluate


def calochallenge_scores(code: Path, gen: Path, ref: Path, out: Path, seed: int) -> dict:
    """CaloChallenge's numbers for a pair of files in its units."""
    result: dict = {}
    subprocess.run(
        [sys.executable, "evaluate.py", "-i", str(gen), "-r", str(ref), "-m", "hist-chi",
         "-d", "2", "--output_dir", str(out)],
        cwd=code, check=True, capture_output=True,
    )  # fmt: skip
    separations = {}
    text = (out / "histogram_chi2_2.txt").read_text().split("\n\n")
    for block in text:
        lines = [line.strip() for line in block.strip().splitlines() if "List of" not in line]
        if len(lines) >= 2 and lines[-2].endswith(":"):
            separations[lines[-2].rstrip(":").strip()] = float(lines[-1])
    result["separation"] = separations

    sys.path.insert(0, str(code))
    cwd = os.getcwd()
    os.chdir(code)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cc = importlib.import_module("evaluate")
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            np.random.seed(seed)  # noqa: NPY002 (its split draws from the global state)
            torch.manual_seed(seed)
            files = [h5py.File(gen), h5py.File(ref)]
            hlf = []
            for f in files:
                h = cc.HLF.HighLevelFeatures("electron", filename="binning_dataset_2.xml")
                showers = f["showers"][:]
                h.CalculateFeatures(np.where(showers < 0.5e-3 / 0.033, 0, showers))
                h.Einc = f["incident_energies"][:]
                hlf.append(h)
            threshold = 0.5e-3 / 0.033
            for mode, prepare in (
                ("low", lambda f, h, label: cc.prepare_low_data_for_classifier(
                    f, h, label, normed=False, threshold=threshold)),
                ("high", lambda f, h, label: cc.prepare_high_data_for_classifier(
                    f, h, label, threshold=threshold)),
            ):  # fmt: skip
                arrays = [prepare(f, h, label) for f, h, label in zip(files, hlf, (0.0, 1.0))]
                train, test, val = cc.ttv_split(*arrays)
                args = types.SimpleNamespace(
                    device=torch.device("cpu"), save_mem=False, cls_n_epochs=50,
                    mode=f"crosscheck-{mode}", dataset="2", output_dir=str(out),
                )  # fmt: skip
                model = cc.DNN(num_layer=2, num_hidden=2048, input_dim=train.shape[1] - 1)
                optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
                loaders = [
                    DataLoader(TensorDataset(torch.tensor(a)), batch_size=1000, shuffle=shuffle)
                    for a, shuffle in ((train, True), (test, False), (val, False))
                ]
                cc.train_and_evaluate_cls(model, loaders[0], loaders[1], optimizer, args)
                model = cc.load_classifier(model, args)
                with torch.no_grad():
                    _, auc, _ = cc.evaluate_cls(
                        model, loaders[2], args, final_eval=True, calibration_data=loaders[1]
                    )
                result[f"auc_{mode}"] = float(auc)
                if mode == "high":
                    try:
                        import jetnet
                    except ImportError:
                        result["fpd"] = result["kpd"] = None
                    else:
                        ref_array, gen_array = arrays[1][:, :-1], arrays[0][:, :-1]
                        result["fpd"] = jetnet.evaluation.fpd(
                            ref_array, gen_array, min_samples=10000
                        )
                        result["kpd"] = jetnet.evaluation.kpd(
                            ref_array, gen_array, batch_size=10000
                        )
            for f in files:
                f.close()
    finally:
        os.chdir(cwd)
        sys.path.remove(str(code))
    return result


def caloforge_scores(gen: Path, ref: Path, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = evaluate(gen, ref, seed=seed, protocol="calochallenge").metrics
    return {
        "separation": m["separation_power"],
        "auc_low": m["classifier_auc_low"],
        "auc_high": m["classifier_auc_high"],
        "fpd": (m["fpd"], m["fpd_err"]),
        "kpd": (m["kpd"], m["kpd_err"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--calochallenge-code", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2000, help="events per file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    code = args.calochallenge_code
    code = code / "code" if (code / "code" / "evaluate.py").exists() else code
    if not (code / "evaluate.py").exists():
        parser.error(f"{code} has no evaluate.py: give a checkout of CaloChallenge/homepage")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref = copy_head(args.reference, tmp / "ref.h5", args.n)
        other = copy_head(args.other, tmp / "other.h5", args.n)
        pairs = {
            "Geant4 vs Geant4": other,
            "20% outward": write_distorted(other, tmp / "outward.h5", "20% outward"),
        }
        cc_ref = to_calochallenge(ref, tmp / "cc_ref.h5")
        for label, gen in pairs.items():
            cc_gen = to_calochallenge(gen, tmp / f"cc_{len(rows)}.h5")
            ours = caloforge_scores(cc_gen, cc_ref, args.seed)
            folder = tmp / f"cc_out_{len(rows)}"
            folder.mkdir()
            theirs = calochallenge_scores(code, cc_gen, cc_ref, folder, args.seed)
            rows.append({"pair": label, "caloforge": ours, "calochallenge": theirs})

    def fmt(value):
        if value is None:
            return "n/a"
        if isinstance(value, tuple | list):
            return f"{1e3 * value[0]:.3f} ± {1e3 * value[1]:.3f}"
        return f"{value:.4f}"

    print(f"{'pair':18s} {'metric':22s} {'caloforge':>22s} {'CaloChallenge':>22s}")
    for row in rows:
        ours, theirs = row["caloforge"], row["calochallenge"]
        for key, label in (("auc_low", "AUC cells"), ("auc_high", "AUC features"),
                           ("fpd", "FPD x1e3"), ("kpd", "KPD x1e3")):  # fmt: skip
            print(f"{row['pair']:18s} {label:22s} {fmt(ours[key]):>22s} {fmt(theirs[key]):>22s}")
        etot = ours["separation"].get("E_tot/E_inc")
        their_etot = theirs["separation"].get("Etot / Einc")
        print(f"{row['pair']:18s} {'sep E_tot/E_inc':22s} {fmt(etot):>22s} {fmt(their_etot):>22s}")
        ours_max = max(v for v in ours["separation"].values() if v == v)
        theirs_max = max(theirs["separation"].values()) if theirs["separation"] else None
        print(f"{row['pair']:18s} {'largest sep. power':22s} {fmt(ours_max):>22s} "
              f"{fmt(theirs_max):>22s}")  # fmt: skip
    print(json.dumps(rows, default=float))


if __name__ == "__main__":
    main()
