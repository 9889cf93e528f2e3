"""A flow model's weights with its cells' maps fitted again under other map settings.

A flow model (``flow-matching``, ``energy-first`` and their students) maps each cell's law onto
the training data's after training (``calibration``, fitted by ``after_training``). This script
copies a model directory, sets ``read_out_knots`` in the copy's config, fits the maps again on a
training file and writes the copy, so that a map setting is measured on the same weights
without training again.

Departure from the training loop: the maps are fitted on the whole file given (at most the
20 000 showers ``after_training`` takes), where the loop fits them on its training split, which
leaves out the showers of its held-out split.

Usage: python benchmarks/refit_maps.py MODEL TRAIN.h5 --out DIR --read-out-knots 8
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from caloforge.data.showerfile import ShowerFile
from caloforge.errors import CaloforgeError
from caloforge.models import load_model
from caloforge.models.flow_matching import _ShowerFlow


def refit(model: Path, train: str, out: Path, read_out_knots: int) -> None:
    """Write to ``out`` the model ``model`` with its maps fitted again on ``train``."""
    if not (model / "config.json").is_file():
        raise CaloforgeError(f"{model} is not a model directory")
    if out.exists():
        raise CaloforgeError(f"{out} exists")
    loaded = load_model(model)
    if not isinstance(loaded, _ShowerFlow) or not loaded.config.calibration:
        raise CaloforgeError(f"{model} is not a flow model with cells' maps")
    partial = out.with_name(out.name + ".partial")  # renamed when complete
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(model, partial, ignore=shutil.ignore_patterns("checkpoints", "*.jsonl"))
    (partial / "metrics.json").unlink(missing_ok=True)  # measured with the maps it loses
    config = json.loads((partial / "config.json").read_text())
    config["read_out_knots"] = read_out_knots
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    try:
        copy = load_model(partial)
        data = ShowerFile(train).read()
        copy.after_training(data.showers, data.incident_energies[:, 0], data.conditions)
        copy.save_weights_to(partial / "model.safetensors")
    except BaseException:
        shutil.rmtree(partial)
        raise
    partial.rename(out)
    print(f"wrote {out}: {model}'s weights, the maps with read_out_knots={read_out_knots}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a trained flow model's directory")
    parser.add_argument("train", help="the training file the maps are fitted on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--read-out-knots", type=int, required=True)
    args = parser.parse_args()
    try:
        refit(args.model, args.train, args.out, args.read_out_knots)
    except CaloforgeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
