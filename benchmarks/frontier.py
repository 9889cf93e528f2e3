"""The speed–fidelity frontier of a detector's models, measured in one run.

Every pretrained model of the held-out file's detector (or the models given) generates
showers for that file's conditions (seed 1, ONNX Runtime), is evaluated against it (CaloChallenge's
classifier unless --quick, and the evaluation's second opinion from gradient-boosted trees on the
cells) and benched (torch and ONNX Runtime, batches of 1 000 and 10 000 unless --batch-sizes);
Geant4 is timed on one core in the same run for the speed-ups. Writes to OUT:

- ``frontier.json``: one row per model, the numbers and the commands' settings;
- ``frontier.md``: the table the docs show, and a second one of the figures each study judged
  its models by (the ``summary`` of every study validation that applies to the detector);
- ``frontier.png``: classifier AUC (cells, the larger of the network's and the trees') against
  ms/shower;
- ``<model>/metrics.json`` and ``report.html``: each model's whole evaluation. A second run
  into the same OUT keeps an evaluation against the same held-out file and classifier, so an
  interrupted run resumes at the model it stopped in (the speeds are always measured again).

Usage: python benchmarks/frontier.py HELDOUT.h5 --out DIR [--models NAME_OR_DIR ...] [--quick]
       [--geant4-events 40] [--n N] [--batch-sizes 1000 10000]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from caloforge.data.showerfile import ShowerFile, copy_events
from caloforge.evaluation.evaluate import evaluate, write_metrics
from caloforge.evaluation.report import cells_auc, write_report
from caloforge.evaluation.report.formatting import sig
from caloforge.evaluation.validations import VALIDATIONS
from caloforge.generation import generate
from caloforge.models import load_model, pretrained_models
from caloforge.timing import bench, geant4_ms_per_shower


def _models(detector: str, chosen: list[str]) -> list[str]:
    return chosen or [m for m in pretrained_models() if load_model(m).detector.name == detector]


def _done(folder: Path, reference: Path, quick: bool) -> dict | None:
    """An earlier run's evaluation of this model against this reference, or None."""
    path = folder / "metrics.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    same = Path(m["provenance"]["reference"]["path"]).resolve() == reference.resolve()
    was_quick = any(r.get("settings") == "quick" for r in m["classifier"].values())
    return m if same and was_quick == quick else None


def _row(name: str, reference: Path, out: Path, quick: bool, sizes: tuple[int, ...]) -> dict:
    folder = out / Path(name).name
    folder.mkdir(parents=True, exist_ok=True)
    m = _done(folder, reference, quick)
    if m is None:
        generated = folder / "generated.h5"
        started = time.perf_counter()
        generate(name, generated, conditions_from=reference, seed=1, backend="onnx", overwrite=True)
        print(f"{name}: generated in {time.perf_counter() - started:.0f} s", flush=True)
        evaluation = evaluate(generated, reference, quick=quick, seed=0)
        write_report(evaluation, folder)
        write_metrics(evaluation, folder)  # last: its presence marks the evaluation done
        m = evaluation.metrics
    else:
        print(f"{name}: evaluation kept from an earlier run", flush=True)
    worst = max(m["separation_power"].items(), key=lambda kv: kv[1])
    timed = bench(name, backends=("torch", "onnx"), batch_sizes=sizes)
    speed = min(timed.points, key=lambda p: p.ms_per_shower)  # the best backend and batch size
    print(f"{name}: evaluated and benched", flush=True)
    return {
        "model": Path(name).name,
        "family": load_model(name).family,
        "auc_cells": m["auc_cells_network"],
        "auc_features": m["auc_features"],
        "auc_cells_trees": m["auc_cells_trees"],
        "auc_cells_larger": cells_auc(m),
        "fpd_x1e3": m["fpd_x1e3"],
        "fpd_err_x1e3": m["fpd_x1e3_err"],
        "worst_separation": worst[0],
        "worst_separation_power": worst[1],
        "ms_per_shower": speed.ms_per_shower,
        "backend": speed.backend,
        "batch_size": speed.batch_size,
        "study": {
            name: value
            for v in VALIDATIONS
            if v.KEY in m
            for name, value in v.summary(m[v.KEY]).items()
        },
    }


def _table(rows: list[dict], geant4_ms: float, quick: bool) -> str:
    label = "quick classifier" if quick else "CaloChallenge's classifier"
    lines = [
        f"| model | AUC cells ({label}) | AUC cells (trees) | AUC features | FPD ×10³ | "
        "largest separation power | ms/shower | speed-up over Geant4 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model']}` | {r['auc_cells']:.3f} | {r['auc_cells_trees']:.3f} | "
            f"{r['auc_features']:.3f} | {r['fpd_x1e3']:.1f} ± {r['fpd_err_x1e3']:.1f} | "
            f"{r['worst_separation']} {r['worst_separation_power']:.3f} | "
            f"{r['ms_per_shower']:.4f} ({r['backend']}, {r['batch_size']}) | "
            f"{geant4_ms / r['ms_per_shower']:,.0f}× |"
        )
    lines.append(f"| Geant4 (one core) | | | | | | {geant4_ms:.1f} | 1× |")
    names = list(dict.fromkeys(name for r in rows for name in r["study"]))
    if names:
        lines += ["", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for r in rows:
            values = " | ".join(sig(r["study"].get(name)) for name in names)
            lines.append(f"| `{r['model']}` | {values} |")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], geant4_ms: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["ms_per_shower"], r["auc_cells_larger"], s=40)
        ax.annotate(
            r["model"],
            (r["ms_per_shower"], r["auc_cells_larger"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.scatter(geant4_ms, 0.5, marker="*", s=80, color="k")
    ax.annotate("Geant4", (geant4_ms, 0.5), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("ms per shower (this machine)")
    ax.set_ylabel("classifier AUC, cells (larger of network, trees)")
    ax.set_ylim(0.45, 1.02)
    ax.axhline(0.6, ls=":", color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("heldout", type=Path, help="held-out Geant4 file no model trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--models", nargs="*", default=[], help="these models only (default: every pretrained one)"
    )
    parser.add_argument("--quick", action="store_true", help="the quick classifier")
    parser.add_argument("--geant4-events", type=int, default=40)
    parser.add_argument("--n", type=int, default=None, help="use the first N held-out showers")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1000, 10_000], help="benched batch sizes"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reference = args.heldout
    if args.n is not None:
        reference = copy_events(args.heldout, args.out / "heldout.h5", n=args.n)
    held = ShowerFile(reference)
    rows = [
        _row(m, reference, args.out, args.quick, tuple(args.batch_sizes))
        for m in _models(held.detector.name, args.models)
    ]
    geant4_ms = geant4_ms_per_shower(held.detector, held.source, args.geant4_events, seed=0)
    summary = {
        "heldout": str(args.heldout),
        "n_heldout": len(held),
        "classifier": "quick" if args.quick else "calochallenge",
        "geant4_ms_per_shower": geant4_ms,
        "geant4_events": args.geant4_events,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "models": rows,
    }
    (args.out / "frontier.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = _table(rows, geant4_ms, args.quick)
    (args.out / "frontier.md").write_text(table)
    _plot(rows, geant4_ms, args.out / "frontier.png")
    print(table)
    print(json.dumps({k: v for k, v in summary.items() if k != "models"}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
