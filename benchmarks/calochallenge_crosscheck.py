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
- CaloChallenge: its own functions, imported from its ``evaluate.py``: ``HighLevelFeatures``,
  the separation powers its ``--mode hist-chi`` writes (``plot_histograms``, ``plot_cell_dist``;
  LaTeX text rendering switched off, which its numbers do not use), its DNN classifier trained,
  selected and calibrated by its ``train_and_evaluate_cls`` and ``evaluate_cls`` on a 60/20/20
  split (its script's fixed split sizes assume 100 000 events), and jetnet's FPD/KPD on its
  feature array when jetnet is importable (else marked n/a).

Run it with an interpreter that has caloforge, and for the FPD/KPD column also jetnet: jetnet
0.2.5's dependencies (``wasserstein`` through ``energyflow``) are built against numpy 1, so use a
separate virtual environment (``pip install torch==2.13.0``, then ``pip install jetnet -e .``, then
``pip install "numpy<2" "pandas<3"`` and ``pip uninstall pyarrow``). Its DNN runs in float64:
about 25 minutes per pair of 2 000 showers on two cores. Prints a table and one JSON line. Never
run as a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
import types
import warnings
from pathlib import Path

import h5py
import numpy as np
import torch

from caloforge.data.formats import to_calochallenge
from caloforge.data.showerfile import copy_events
from caloforge.evaluation.distortions import write_distorted
from caloforge.evaluation.evaluate import evaluate

_LABELS = {
    "Etot / Einc": "E_tot/E_inc",
    "E layer": "E_layer",
    "EC Eta layer": "EC_eta",
    "EC Phi layer": "EC_phi",
    "Width Eta layer": "width_eta",
    "Width Phi layer": "width_phi",
    "Voxel distribution": "cell spectrum",
}
"""CaloChallenge's names of its histograms (histogram_chi2_2.txt) → caloforge's features."""


def _our_name(label: str) -> str:
    prefix, _, layer = label.rpartition(" ")
    if prefix in _LABELS and layer.isdigit():
        return f"{_LABELS[prefix]}_{layer}"
    return _LABELS.get(label, label)


def calochallenge_scores(code: Path, gen: Path, ref: Path, out: Path, seed: int) -> dict:
    """CaloChallenge's numbers for a pair of files in its units, by its own functions."""
    result: dict = {}
    sys.path.insert(0, str(code))
    cwd = os.getcwd()
    os.chdir(code)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cc = importlib.import_module("evaluate")
            import matplotlib.pyplot as plt
            from torch.utils.data import DataLoader, TensorDataset

            plt.rc("text", usetex=False)  # its plots ask for LaTeX; the numbers do not
            torch.set_default_dtype(torch.float64)  # as its import does, for its classifier
            np.random.seed(seed)  # noqa: NPY002 (its split draws from the global state)
            torch.manual_seed(seed)
            threshold = 0.5e-3 / 0.033  # its args.min_energy for dataset 2
            files = [h5py.File(gen), h5py.File(ref)]
            hlf, showers = [], []
            for f in files:
                h = cc.HLF.HighLevelFeatures("electron", filename="binning_dataset_2.xml")
                cells = f["showers"][:]
                showers.append(np.where(cells < threshold, 0, cells))
                h.CalculateFeatures(showers[-1])
                h.Einc = f["incident_energies"][:]
                hlf.append(h)
            args = types.SimpleNamespace(
                mode="hist-chi", dataset="2", output_dir=str(out), x_scale="log",
                min_energy=threshold, device=torch.device("cpu"), save_mem=False,
                cls_n_epochs=50,
            )  # fmt: skip
            (out / "histogram_chi2_2.txt").write_text("List of chi2\n")
            cc.plot_histograms(hlf[0], hlf[1], args)
            cc.plot_cell_dist(showers[0], showers[1], args)
            separations = {}
            for block in (out / "histogram_chi2_2.txt").read_text().split("\n\n"):
                lines = [line.strip() for line in block.strip().splitlines()]
                lines = [line for line in lines if line and not line.startswith("List of")]
                if len(lines) >= 2 and lines[-2].endswith(":"):
                    separations[_our_name(lines[-2].rstrip(":").strip())] = float(lines[-1])
            result["separation"] = separations
            for mode, prepare in (
                ("low", lambda f, h, label: cc.prepare_low_data_for_classifier(
                    f, h, label, normed=False, threshold=threshold)),
                ("high", lambda f, h, label: cc.prepare_high_data_for_classifier(
                    f, h, label, threshold=threshold)),
            ):  # fmt: skip
                arrays = [prepare(f, h, label) for f, h, label in zip(files, hlf, (0.0, 1.0))]
                train, test, val = cc.ttv_split(*arrays)
                args.mode = f"crosscheck-{mode}"
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
        torch.set_default_dtype(torch.float32)  # caloforge's classifier runs in float32
    return result


def caloforge_scores(gen: Path, ref: Path, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = evaluate(gen, ref, seed=seed, protocol="calochallenge").metrics
    return {
        "separation": m["separation_power"],
        "auc_low": m["auc_cells_network"],
        "auc_high": m["auc_features"],
        "fpd": (m["fpd_x1e3"] / 1e3, m["fpd_x1e3_err"] / 1e3),
        "kpd": (m["kpd_x1e3"] / 1e3, m["kpd_x1e3_err"] / 1e3),
        "spectrum": m["cell_spectrum_separation_power"],
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
        ref = copy_events(args.reference, tmp / "ref.h5", n=args.n)
        other = copy_events(args.other, tmp / "other.h5", n=args.n)
        pairs = {
            "Geant4 vs Geant4": other,
            "20% outward": write_distorted(other, tmp / "outward.h5", "20% outward"),
        }
        cc_ref = to_calochallenge(ref, tmp / "cc_ref.h5")
        for label, gen in pairs.items():
            cc_gen = to_calochallenge(gen, tmp / f"cc_{len(rows)}.h5")
            folder = tmp / f"cc_out_{len(rows)}"
            folder.mkdir()
            theirs = calochallenge_scores(code, cc_gen, cc_ref, folder, args.seed)
            ours = caloforge_scores(cc_gen, cc_ref, args.seed)
            rows.append({"pair": label, "caloforge": ours, "calochallenge": theirs})
            print(json.dumps(rows[-1], default=float), flush=True)

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
        common = sorted(set(ours["separation"]) & set(theirs["separation"]))
        diff = max(abs(ours["separation"][k] - theirs["separation"][k]) for k in common)
        for key in ("E_tot/E_inc", max(common, key=theirs["separation"].get)):
            label = f"sep {key}"
            print(
                f"{row['pair']:18s} {label:22s} {fmt(ours['separation'][key]):>22s} "
                f"{fmt(theirs['separation'][key]):>22s}"
            )
        print(f"{row['pair']:18s} {'cell spectrum sep':22s} {fmt(ours['spectrum']):>22s} "
              f"{fmt(theirs['separation'].get('cell spectrum')):>22s}")  # fmt: skip
        print(f"{row['pair']:18s} largest |difference| of {len(common)} separation powers: "
              f"{diff:.4f}")  # fmt: skip
    print(json.dumps(rows, default=float))


if __name__ == "__main__":
    main()
