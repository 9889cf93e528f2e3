"""AOTInductor export: ``decode`` compiled ahead of time into a package that libtorch runs.

``torch.export`` traces ``decode`` with a dynamic batch axis, and AOTInductor compiles the graph
to a shared library inside a ``.pt2`` package (``torch._inductor.aoti_compile_and_package``). The
C++ library in ``cpp/`` loads such a package with libtorch's ``AOTIModelPackageLoader``; Python
loads it with ``AotiSampler``. What the caller needs beside the graph is stored in the package's
metadata as strings under ``caloforge.*`` keys (lists comma-separated, floats as Python's repr,
which reads back exactly): the same facts the ONNX export writes as JSON.

A package holds machine code for this CPU architecture and this torch version (recorded under
``caloforge.torch_version``); export again for another. Compiling takes tens of seconds.

``AotiSampler`` runs batches of fewer than ``SMALL_BATCH`` showers on one thread: the compiled
code opens an OpenMP parallel region per layer, and with two threads each region waits for the
other thread at its barrier. On a 2-core machine with other work running, a batch of one took
100 ms a call on two threads and 0.33 ms on one (ONNX Runtime: 0.16 ms), measured in one run
(``benchmarks/cpp_speed.py``); small batches have too little work to share.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from caloforge.errors import CaloforgeError
from caloforge.files import atomic_write
from caloforge.runtimes import Decoder, checked_path, example_inputs, metadata

__all__ = ["FORMAT", "SMALL_BATCH", "AotiSampler", "export_aoti", "package_metadata"]

FORMAT = "caloforge-aoti-1"
MAX_BATCH = 1 << 20
SMALL_BATCH = 64
"""Batches smaller than this run on one thread (module docstring)."""


def package_metadata(model) -> dict[str, str]:
    """The ``caloforge.*`` string entries stored in a model's package."""
    from caloforge import __version__

    info = metadata(model)
    ranges = [info["training_range"].get(n, [float("nan")] * 2) for n in info["conditions"]]
    entries = {
        "format": FORMAT,
        "detector": info["detector"],
        "detector_yaml": info["detector_yaml"],
        "n_cells": str(info["n_cells"]),
        "latent_dim": str(info["latent_dim"]),
        "conditions": ",".join(info["conditions"]),
        "condition_units": ",".join(info["condition_units"]),
        "condition_min": ",".join(repr(float(r[0])) for r in ranges),
        "condition_max": ",".join(repr(float(r[1])) for r in ranges),
        "energy_from": info["energy_from"],
        "unit": info["unit"],
        "cell_order": info["cell_order"],
        "producer": json.dumps(info["producer"]),
        "torch_version": torch.__version__,
        "caloforge_version": __version__,
    }
    return {f"caloforge.{k}": v for k, v in entries.items()}


def export_aoti(model, path: str | Path) -> Path:
    """Compile ``model.decode`` into the AOTInductor package ``path`` (``.pt2``)."""
    path = checked_path(path, ".pt2")
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        # torch.export and Inductor warn about their own internals' deprecations.
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        program = torch.export.export(
            Decoder(model),
            example_inputs(model, batch=4),
            dynamic_shapes={"noise": {0: batch}, "conditions": {0: batch}},
        )
        with atomic_write(path, suffix=".pt2") as tmp:
            torch._inductor.aoti_compile_and_package(
                program,
                package_path=str(tmp),
                inductor_configs={"aot_inductor.metadata": package_metadata(model)},
            )
    return path


class AotiSampler:
    """Runs an AOTInductor package in this process: what the C++ library runs, from Python."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise CaloforgeError(f"no AOTInductor package at {path}")
        try:
            self.runner = torch._inductor.aoti_load_package(str(path))
            meta = self.runner.get_metadata()
        except Exception as exc:  # libtorch raises RuntimeError with its own text for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CaloforgeError(f"cannot load model package {path}: {first}") from None
        if meta.get("caloforge.format") != FORMAT:
            raise CaloforgeError(f"{path} is not a caloforge model package ({FORMAT})")
        self.metadata = {k.removeprefix("caloforge."): v for k, v in meta.items()}
        self.latent_dim = int(self.metadata["latent_dim"])

    def decode(self, noise: np.ndarray, conditions: np.ndarray) -> np.ndarray:
        z = torch.as_tensor(np.ascontiguousarray(noise, dtype=np.float32))
        c = torch.as_tensor(np.ascontiguousarray(conditions, dtype=np.float32))
        threads = torch.get_num_threads()
        small = len(z) < SMALL_BATCH and threads > 1
        if small:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                return self.runner(z, c).numpy()
        finally:
            if small:
                torch.set_num_threads(threads)
