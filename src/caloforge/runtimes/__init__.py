"""Exporting a model's ``decode`` for use outside Python: ONNX and AOTInductor packages.

Both formats hold the same graph: ``noise`` (N, latent) standard normal and physical
``conditions`` (N, k) in, ``showers`` (N, n_cells) in visible MeV out, the batch axis dynamic and
the preprocessing transforms inside. What a caller needs beside the graph (detector, cell order,
condition names, units and training ranges) is ``metadata(model)``: written as JSON beside an
ONNX file, stored as string entries inside an AOTInductor package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from caloforge.errors import CaloforgeError, InvalidArgument, argument, checked

__all__ = ["FORMATS", "Decoder", "checked_path", "example_inputs", "export", "metadata"]

FORMATS = {".onnx": "ONNX (ONNX Runtime, opset 17)", ".pt2": "AOTInductor package (libtorch)"}


class Decoder(torch.nn.Module):
    """``model.decode`` as a module of its own, in eval mode: the graph both exporters trace.

    Eval mode here, not only on the model: the exporters put the module they are given back in
    its own mode afterwards, recursively, which would leave batch norm in training mode.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        showers = self.model.decode(noise, conditions)
        if noise.shape[1] == 0:
            # A deterministic model (the L2 LSTM) keeps the noise input every exported model
            # has, which an exporter would drop as unused: it adds the sum of no noise, 0.
            showers = showers + noise.sum(dim=1, keepdim=True)
        return showers


def example_inputs(model, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs to trace with: zero noise and the lower end of each condition's training range."""
    lows = [model.config.condition_range.get(n, (1.0, 1.0))[0] for n in model.config.conditions]
    return torch.zeros(batch, model.latent_dim), torch.tensor([lows] * batch, dtype=torch.float32)


def energy_source(model) -> str:
    """How the incident energy follows from the conditions: ``energy`` or ``momentum``."""
    from caloforge.sources.spec import energy_from

    return energy_from(model.config.conditions)


def metadata(model) -> dict[str, Any]:
    """What an exported graph's caller needs to build its inputs and read its output."""
    from caloforge.sources import CONDITIONS

    detector = model.detector
    return {
        "producer": model.describe(),
        "detector": detector.name,
        "detector_yaml": detector.to_yaml(),
        "n_cells": detector.n_cells,
        "latent_dim": model.latent_dim,
        "noise": "standard normal, independent entries",
        "conditions": list(model.config.conditions),
        "condition_units": [CONDITIONS[n][0] for n in model.config.conditions],
        "training_range": {k: list(v) for k, v in model.config.condition_range.items()},
        "energy_from": energy_source(model),
        "unit": "visible MeV",
        "cell_order": detector.cell_order,
        "layers": [
            {
                "name": layer.name,
                "shape": list(layer.readout.shape),
                "binning": layer.readout.binning,
                "first_cell": int(a),
            }
            for layer, a in zip(detector.readout_layers, detector.layer_offsets)
        ],
        "transforms": {
            "conditions (applied inside the graph)": model.config.condition_transform,
            "showers (inverse applied inside the graph)": model.config.shower_transform,
        },
    }


def checked_path(path: str | Path, suffix: str) -> Path:
    """``path`` as a Path; one-line refusal unless it ends in ``suffix`` and its folder exists."""
    path = Path(path)
    if path.suffix != suffix:
        raise CaloforgeError(f"the export path must end in {suffix}, got {path}")
    if not path.parent.is_dir():
        raise CaloforgeError(f"output folder {path.parent} does not exist")
    return path


@checked
def export(model, path: str | Path) -> Path:
    """Export ``model`` (a loaded model, a model directory or a pretrained model's name) in the
    format its path's suffix names (``.onnx`` or ``.pt2``)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        known = ", ".join(f"{s} ({d})" for s, d in FORMATS.items())
        raise InvalidArgument("path", f"the export path must end in one of {known}; got {path}")
    if path.suffix == ".onnx":
        from caloforge.runtimes.onnx import export_onnx

        return export_onnx(_loaded(model), path)
    from caloforge.runtimes.aoti import export_aoti

    return export_aoti(_loaded(model), path)


def _loaded(model):
    if not isinstance(model, str | Path):
        return model
    from caloforge.models import load_model

    with argument("model"):
        return load_model(model)
