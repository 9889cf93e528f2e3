"""Fidelity against training time: a training run's last checkpoint, judged on a held-out file.

Each call takes a training directory's last checkpoint (the run may still be going), writes its
weights as a model directory (OUT/step-N), generates showers with it for every event of the
held-out file (seed 1), evaluates them against that file without the classifiers (the
high-level features, FPD and the study validations that apply), and appends one line to
OUT/progress.jsonl: the step, the hours of the training loop's clock, and the figures. A
family's fit after training (the flows' cell maps) is not made: the snapshot is the weights
as trained. `--table` prints progress.jsonl as a markdown table, one row per snapshot.

Run it between stretches of a long training, or beside it at low priority:

    while sleep 1800; do nice -n 19 python benchmarks/training_progress.py RUN HELDOUT.h5 \\
        --out RUN-progress; done

Usage: python benchmarks/training_progress.py RUN_DIR HELDOUT.h5 --out DIR [--table]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from caloforge.evaluation.evaluate import evaluate
from caloforge.evaluation.report.formatting import sig
from caloforge.evaluation.validations import VALIDATIONS
from caloforge.generation import generate
from caloforge.models import get_family
from caloforge.models.base import read_config
from caloforge.training.checkpoint import load_checkpoint
from caloforge.training.loop import LAST


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def snapshot(run: Path, out: Path) -> tuple[Path, dict]:
    """The run's last checkpoint as a model directory under ``out``; the loop's state."""
    config = read_config(run)
    model = get_family(config.family).load(run)
    loop = load_checkpoint(run / LAST, model, {})
    directory = out / f"step-{loop['step']}"
    model.save(directory)
    return directory, loop


def figures(metrics: dict) -> dict:
    """What progress.jsonl keeps of an evaluation's metrics.json: the mean separation power, FPD
    and each study validation's ``summary``."""
    row = {
        "mean separation power": float(np.mean(list(metrics["separation_power"].values()))),
        "FPD ×10³": metrics["fpd_x1e3"],
    }
    for validation in VALIDATIONS:
        if validation.KEY in metrics:
            row |= validation.summary(metrics[validation.KEY])
    return row


def table(rows: list[dict]) -> str:
    """progress.jsonl as markdown: a row per snapshot, a column per figure."""
    if not rows:
        return ""
    names = [k for k in rows[0] if k not in ("step", "hours")]
    lines = [
        "| step | hours | " + " | ".join(names) + " |",
        "|---" * (len(names) + 2) + "|",
    ]
    for r in rows:
        values = " | ".join(sig(r.get(name)) for name in names)
        lines.append(f"| {r['step']} | {r['hours']:.2f} | {values} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("heldout", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", action="store_true", help="print progress.jsonl and stop")
    args = parser.parse_args(argv)
    log = args.out / "progress.jsonl"
    if not args.table:
        args.out.mkdir(parents=True, exist_ok=True)
        directory, loop = snapshot(args.run, args.out)
        done = {json.loads(line)["step"] for line in log.open()} if log.exists() else set()
        if loop["step"] not in done:
            _say(f"step {loop['step']}: generating for {args.heldout}")
            showers = directory.with_suffix(".h5")
            generate(directory, showers, conditions_from=args.heldout, seed=1, overwrite=True)
            _say(f"step {loop['step']}: evaluating")
            metrics = evaluate(showers, args.heldout, classifier=False).metrics
            row = {"step": loop["step"], "hours": loop["seconds"] / 3600} | figures(metrics)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            showers.unlink()
    rows = [json.loads(line) for line in log.open()] if log.exists() else []
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
