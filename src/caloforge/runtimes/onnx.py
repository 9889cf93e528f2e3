"""ONNX export of a model's ``decode`` and an ONNX Runtime sampler.

The exported graph maps ``noise`` (N, latent) and physical ``conditions`` (N, k) to ``showers``
(N, n_cells) in MeV, with the batch axis dynamic. Noise is an input, so the graph is deterministic
and a C++ caller draws it (standard normal) with its own generator. The preprocessing transforms
are inside the graph; their constants are also written into the metadata JSON beside the model,
with the input names and shapes, the condition names and units and the cell order: what a C++
user of ONNX Runtime needs to build the inputs and read the output.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge.errors import CaloforgeError
from caloforge.files import atomic_write
from caloforge.runtimes import Decoder, checked_path, example_inputs, metadata

__all__ = ["OPSET", "OnnxSampler", "export_onnx", "metadata_path"]

OPSET = 17


def metadata_path(onnx_path: str | Path) -> Path:
    """Where the metadata JSON of an exported model lies: ``model.onnx`` → ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def export_onnx(model, path: str | Path) -> Path:
    """Export ``model.decode`` to ``path`` (ONNX opset 17) and its metadata beside it."""
    path = checked_path(path, ".onnx")
    model = model.eval()
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # The TorchScript-based exporter is the one that needs no extra package; it warns that
        # the dynamo exporter is the future default.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Decoder(model),
            example_inputs(model),
            tmp,
            input_names=["noise", "conditions"],
            output_names=["showers"],
            dynamic_axes={
                "noise": {0: "batch"},
                "conditions": {0: "batch"},
                "showers": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    info = metadata(model)
    meta: dict[str, Any] = {
        "format": "caloforge-onnx-1",
        "producer": info["producer"],
        "opset": OPSET,
        "inputs": {
            "noise": {
                "shape": ["batch", info["latent_dim"]],
                "dtype": "float32",
                "distribution": info["noise"],
            },
            "conditions": {
                "shape": ["batch", len(info["conditions"])],
                "dtype": "float32",
                "names": info["conditions"],
                "units": info["condition_units"],
                "training_range": info["training_range"],
            },
        },
        "outputs": {
            "showers": {"shape": ["batch", info["n_cells"]], "dtype": "float32", "unit": "MeV"}
        },
        **{k: info[k] for k in ("detector", "cell_order", "layers", "transforms")},
    }
    metadata_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


class OnnxSampler:
    """Runs an exported model in ONNX Runtime, with the same noise as the torch model."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise CaloforgeError(f"no ONNX model at {path}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise CaloforgeError(f"cannot load ONNX model {path}: {exc}") from None
        inputs = [(i.name, len(i.shape)) for i in self.session.get_inputs()]
        outputs = [(o.name, len(o.shape)) for o in self.session.get_outputs()]
        if inputs != [("noise", 2), ("conditions", 2)] or outputs != [("showers", 2)]:
            raise CaloforgeError(
                f"{path} is not a caloforge model: it maps {[n for n, _ in inputs]} to "
                f"{[n for n, _ in outputs]}, not noise and conditions to showers"
            )
        self.latent_dim = self.session.get_inputs()[0].shape[1]

    def decode(self, noise: np.ndarray, conditions: np.ndarray) -> np.ndarray:
        (showers,) = self.session.run(
            ["showers"],
            {
                "noise": np.ascontiguousarray(noise, dtype=np.float32),
                "conditions": np.ascontiguousarray(conditions, dtype=np.float32),
            },
        )
        return showers
