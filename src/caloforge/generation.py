"""``generate``: showers from a trained model, streamed in batches into a shower file.

Conditions come either from a reference file (``conditions_from``: the same conditions, event by
event, so that the two files can be compared) or from a source preset (``n`` events drawn as a
simulation would draw them). Batch b's noise comes from a generator seeded by (seed, b), so a
run is reproducible, and an interrupted one resumes (with the same batch size) to the same file.
Memory is bounded by the batch: one batch of conditions, noise and showers at a time.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from caloforge import stopping
from caloforge.data.showerfile import (
    CaloforgeWarning,
    ShowerBatch,
    ShowerFile,
    ShowerWriter,
    check_energies,
    partial_path,
)
from caloforge.errors import CaloforgeError, InvalidArgument, argument, checked
from caloforge.files import locked
from caloforge.sources import Source, load_source

__all__ = [
    "BACKENDS",
    "DEFAULT_BATCH_SIZE",
    "GenerationResult",
    "batch_generator",
    "decoder",
    "generate",
]

DEFAULT_BATCH_SIZE = 1000
"""Showers per batch: on a 2-core CPU as fast as 10 000, with a tenth of the activation memory."""

BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    n_events: int
    seconds: float


def batch_generator(seed: int, batch: int) -> torch.Generator:
    """The noise generator of batch ``batch`` of a run with ``seed``."""
    from caloforge.models.common import seeded_generator

    return seeded_generator(seed, 0x6E4E, batch)


Batches = Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]
"""(energies, conditions) of the events from a first one on, a batch at a time."""


def _conditions_from_file(path: Path, model, batch_size: int) -> tuple[int, Batches, dict]:
    ref = ShowerFile(path)
    detector = ref.detector
    if detector is not None and detector != model.detector:
        raise CaloforgeError(
            f"model is for detector {model.detector.name!r} but {path} is of {detector.name!r}"
        )
    if ref.condition_names != model.config.conditions:
        raise CaloforgeError(
            f"model needs conditions {', '.join(model.config.conditions)}; {path} has "
            f"{', '.join(ref.condition_names)}"
        )
    model.check_conditions(ref.read_conditions())  # all of them, before any file is made

    def batches(start: int):
        for first in range(start, len(ref), batch_size):
            data = ref.read(first, first + batch_size, check=False)
            yield data.incident_energies[:, 0], data.conditions

    source = ref.attrs.get("source")
    return len(ref), batches, {"source": source, "conditions_from": str(path)}


def _conditions_from_source(
    source, n: int, model, batch_size: int, seed: int
) -> tuple[int, Batches, dict]:
    from caloforge.sources import sample_primaries, source_to_yaml

    if source.conditions != model.config.conditions:
        raise CaloforgeError(
            f"model needs conditions {', '.join(model.config.conditions)}; source "
            f"{source.name!r} gives {', '.join(source.conditions)}"
        )
    # The first batch's draws before any file is made, every later batch's as it is drawn.
    opening = sample_primaries(source, 0, min(n, batch_size), seed)
    model.check_conditions(opening.conditions(source.conditions))

    def batches(start: int):
        for first in range(start, n, batch_size):
            primaries = sample_primaries(source, first, min(first + batch_size, n), seed)
            conditions = primaries.conditions(source.conditions)
            model.check_conditions(conditions)
            yield primaries.energy, conditions

    return n, batches, {"source": source_to_yaml(source)}


OUTSIDE_MARGIN = 0.05
"""Conditions beyond the training range by more than this fraction of its span draw a warning:
a fresh draw from the training source goes a little past the extremes of the training sample."""


def _warn_outside_training(model, conditions: np.ndarray, warned: set) -> None:
    for i, name in enumerate(model.config.conditions):
        lo, hi = model.config.condition_range.get(name, (-np.inf, np.inf))
        span = (hi - lo) * OUTSIDE_MARGIN
        column = conditions[:, i]
        if name not in warned and (column.min() < lo - span or column.max() > hi + span):
            warned.add(name)
            warnings.warn(
                f"condition {name!r} goes outside the training range {lo:.4g}..{hi:.4g} "
                f"(to {column.min():.4g}..{column.max():.4g}): the model extrapolates",
                CaloforgeWarning,
                stacklevel=3,
            )


@checked
def generate(
    model_name: str | Path,
    out: str | Path,
    *,
    conditions_from: str | Path | None = None,
    n: int | None = None,
    source: Source | str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    backend: str = "torch",
    overwrite: bool = False,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Generate showers with a trained model into a shower file.

    Arguments:
        model_name: a model directory or a pretrained model's name.
        out: the shower file to write (``out.partial`` until complete).
        conditions_from: take the conditions of this shower file, event by event.
        n: number of showers, with ``source``.
        source: a Source (or preset name) to draw ``n`` conditions from, seeded by ``seed``.
        batch_size: showers per batch (memory is bounded by one batch).
        seed: seed of the noise (and of the conditions drawn from a source).
        backend: "torch" or "onnx" (ONNX Runtime on the exported graph).
        overwrite: replace an existing file.
        resume: continue an interrupted file (same model, seed and batch size).
        progress: called with (showers done, showers planned).
    """
    import time

    from caloforge.models import load_model, resolve_model

    if batch_size <= 0:
        raise InvalidArgument("batch_size", f"must be positive, got {batch_size}")
    if backend not in BACKENDS:
        raise InvalidArgument("backend", f"unknown {backend!r}; choose from {', '.join(BACKENDS)}")
    if (conditions_from is None) == (source is None):
        raise InvalidArgument(
            "conditions_from", "give either a file to take conditions from, or n and a source"
        )
    if source is not None and (n is None or n <= 0):
        raise InvalidArgument("n", f"the number of showers must be positive, got {n}")
    with argument("model_name"):
        model = load_model(model_name)
    if source is not None and not isinstance(source, Source):
        with argument("source"):
            source = load_source(source)
    attrs = {
        "detector": model.detector.to_yaml(),
        "producer": json.dumps(
            {**model.describe(), "model": str(resolve_model(model_name)), "backend": backend}
        ),
        "seed": seed,
        "batch_size": batch_size,
        "cell_order": model.detector.cell_order,
    }
    if source is not None:
        total, batches_from, extra = _conditions_from_source(source, n, model, batch_size, seed)
    else:
        total, batches_from, extra = _conditions_from_file(Path(conditions_from), model, batch_size)
    out = Path(out)
    with locked(out, f"shower file {out}"):
        writer = _open(out, model, attrs, resume, overwrite)
        start = writer.n_committed
        batches = batches_from(start)
        for key, value in extra.items():
            if value is not None:
                writer.attrs[key] = value
        writer.n_planned = total
        writer.attrs["n_planned"] = total
        decode = decoder(model, backend)
        started = time.perf_counter()
        finished = False
        try:
            if progress is not None:
                progress(start, total)
            with stopping.on_request():
                _run(model, decode, batches, start // batch_size, seed, writer, total, progress)
            finished = True
        except stopping.Stopped as exc:
            kept = f"{writer.n_committed} showers kept in {partial_path(out)}"
            raise stopping.Stopped.keeping(exc.signum, kept) from None
        finally:
            done = writer.n_committed
            path = writer.close(finish=finished)
        return GenerationResult(path, done, time.perf_counter() - started)


def _run(model, decode, batches, first_batch, seed, writer, total, progress) -> None:
    """Decode and append batch after batch, looking for a stop request between them."""
    warned: set = set()
    for b, (energy, conditions) in enumerate(batches, start=first_batch):
        _warn_outside_training(model, conditions, warned)
        noise = model.noise(len(conditions), batch_generator(seed, b)).numpy()
        # A model whose map fails on some input (a flow's inverse, an ODE that diverges) is
        # stopped here, naming the event, before a NaN or more energy than the particle
        # brought reaches the file.
        showers = check_energies(
            decode(noise, conditions.astype(np.float32)),
            f"model {model.describe()['name']}",
            first_event=writer.n_committed,
            incident=energy,
        )
        writer.append(ShowerBatch(showers, energy, conditions))
        if progress is not None:
            progress(writer.n_committed, total)
        if signum := stopping.requested():
            raise stopping.Stopped("stopped", signum)


def _open(out: Path, model, attrs: dict, resume: bool, overwrite: bool) -> ShowerWriter:
    if resume and (out.exists() or partial_path(out).exists()):
        existing = ShowerFile(partial_path(out) if partial_path(out).exists() else out)
        for key in ("producer", "seed", "batch_size"):
            if str(existing.attrs.get(key)) != str(attrs[key]):
                raise CaloforgeError(f"cannot resume {existing.path}: made with another {key}")
        return ShowerWriter.resume(out)
    return ShowerWriter.create(
        out,
        n_cells=model.detector.n_cells,
        condition_names=model.config.conditions,
        attrs=attrs,
        overwrite=overwrite,
    )


def decoder(
    model, backend: str, threads: int | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``model.decode`` on numpy arrays, run by torch or by ONNX Runtime (exported on the fly)."""
    if backend == "torch":
        model.eval()

        def run(noise: np.ndarray, conditions: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()

        return run
    import tempfile

    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        sampler = OnnxSampler(export_onnx(model, Path(tmp) / "model.onnx"), threads=threads)
    return sampler.decode
