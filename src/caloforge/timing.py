"""``bench``: how fast a model samples showers, per backend and batch size, and against Geant4.

A measurement times the whole sampling of one batch: drawing the noise, the network, the inverse
transforms. Each point is the median over ``repeats`` samples (at least five), each sample a loop
of as many calls as fill ``SAMPLE_SECONDS`` (as ``timeit``'s autorange), after warm-up calls: a
batch of one takes microseconds, and a few single calls time the clock and the first call's
thread-pool start rather than the model. With
``vs_geant4`` the same kind of conditions are simulated with Geant4 in the same run, one worker,
and its time per shower is taken between the first and the last finished event, so Geant4's
initialisation is not counted against it. Speeds are ratios measured in one run on one machine:
quote them with the machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caloforge.errors import CaloforgeError, argument, checked

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKENDS",
    "BenchPoint",
    "BenchResult",
    "bench",
    "geant4_ms_per_shower",
    "machine_rates",
]

BACKENDS = ("torch", "torch-compile", "onnx", "aoti")
DEFAULT_BACKENDS = ("torch", "torch-compile", "onnx")
"""``aoti`` (the AOTInductor package the C++ library runs, here run by libtorch from Python)
compiles for tens of seconds and needs a C++ compiler: asked for by name only."""


@dataclass(frozen=True)
class BenchPoint:
    backend: str
    batch_size: int
    ms_per_shower: float
    showers_per_s: float


@dataclass
class BenchResult:
    model: str
    points: list[BenchPoint] = field(default_factory=list)
    geant4_ms_per_shower: float | None = None
    geant4_events: int = 0
    notes: list[str] = field(default_factory=list)
    threads: int = 0

    @property
    def best(self) -> BenchPoint:
        """The fastest backend at the largest batch size."""
        largest = max(p.batch_size for p in self.points)
        return min(
            (p for p in self.points if p.batch_size == largest), key=lambda p: p.ms_per_shower
        )

    def summary(self) -> dict[str, Any]:
        """The JSON object of ``caloforge bench --json``."""
        best = self.best
        out: dict[str, Any] = {
            "model": self.model,
            "backend": best.backend,
            "batch_size": best.batch_size,
            "ms_per_shower": best.ms_per_shower,
            "showers_per_s": best.showers_per_s,
            "threads": self.threads,
            "points": [asdict(p) for p in self.points],
            "notes": self.notes,
        }
        if self.geant4_ms_per_shower is not None:
            out["geant4_ms_per_shower"] = self.geant4_ms_per_shower
            out["geant4_events"] = self.geant4_events
            out["speedup"] = self.geant4_ms_per_shower / best.ms_per_shower
        return out


def _conditions(model, n: int, seed: int) -> tuple[np.ndarray, Any]:
    """n conditions from the model's training source (or uniform in its training range)."""
    from caloforge.sources import sample_primaries, source_from_yaml

    text = model.config.training.get("data", {}).get("source")
    if text:
        source = source_from_yaml(text)
        return sample_primaries(source, 0, n, seed).conditions(source.conditions), source
    rng = np.random.default_rng(seed)
    lows, highs = zip(*(model.config.condition_range[c] for c in model.config.conditions))
    return rng.uniform(lows, highs, size=(n, len(lows))), None


SAMPLE_SECONDS = 0.05
"""The least duration of one timed sample (a loop of calls)."""

WARMUP_CALLS = 3
"""Calls made before timing: thread pools start, a dynamic-shape graph meets a new batch size."""


LONG_CALL_SECONDS = 1.0
"""A call this long is warmed up once and timed ``repeats`` times (not at least five)."""


def _timer(run: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``run``: the median over samples of a loop of calls."""
    start = time.perf_counter()
    run()
    long_call = time.perf_counter() - start >= LONG_CALL_SECONDS
    for _ in range(0 if long_call else WARMUP_CALLS - 1):
        run()
    calls = 1
    while True:  # autorange: double the loop until a sample lasts SAMPLE_SECONDS
        start = time.perf_counter()
        for _ in range(calls):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= SAMPLE_SECONDS:
            break
        calls *= 2
    times = [elapsed / calls]
    for _ in range((repeats if long_call else max(repeats, 5)) - 1):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


@checked
def bench(
    model_name: str | Path,
    *,
    backends: Sequence[str] = ("torch", "onnx"),
    batch_sizes: Sequence[int] = (1, 100, 1000, 10_000),
    repeats: int = 3,
    vs_geant4: bool = False,
    geant4_events: int = 20,
    seed: int = 0,
    stage: Callable[[str], None] | None = None,
    exported: Mapping[str, Path] | None = None,
) -> BenchResult:
    """Time a model's sampling per backend and batch size (and Geant4's, with ``vs_geant4``).

    Every backend runs on torch's thread count (``torch.set_num_threads``). ``exported`` gives
    files already exported for a backend ({"onnx": path, "aoti": path}), to time those rather than
    export the model again.
    """
    from caloforge.generation import batch_generator
    from caloforge.models import load_model
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    say = stage or (lambda _: None)
    for backend in backends:
        if backend not in BACKENDS:
            raise CaloforgeError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not batch_sizes or min(batch_sizes) <= 0:
        raise CaloforgeError("batch sizes must be positive")
    if repeats <= 0:
        raise CaloforgeError("repeats must be positive")
    with argument("model_name"):
        model = load_model(model_name)
    model.eval()
    result = BenchResult(model=str(model_name), threads=torch.get_num_threads())
    conditions, source = _conditions(model, max(batch_sizes), seed)
    generator = batch_generator(seed, 0)
    decoders: dict[str, Callable] = {}
    for backend in backends:
        if backend == "torch":
            decoders[backend] = model.decode
        elif backend == "torch-compile":
            compiled = _compile(model, result)
            if compiled is not None:
                decoders[backend] = compiled
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = (exported or {}).get(backend)
                if backend == "onnx":
                    path = path or export_onnx(model, Path(tmp) / "model.onnx")
                    sampler = OnnxSampler(path, threads=result.threads)
                else:
                    from caloforge.runtimes.aoti import AotiSampler, export_aoti

                    sampler = AotiSampler(path or export_aoti(model, Path(tmp) / "model.pt2"))

            def exported_decode(noise, cond, sampler=sampler):
                return sampler.decode(noise.numpy(), cond.numpy())

            decoders[backend] = exported_decode
    for backend, decode in decoders.items():
        for size in batch_sizes:
            say(f"{backend}, batch {size}")
            cond = torch.as_tensor(conditions[:size], dtype=torch.float32)

            def run(decode=decode, cond=cond):
                with torch.inference_mode():
                    return decode(model.noise(len(cond), generator), cond)

            seconds = _timer(run, repeats)
            result.points.append(BenchPoint(backend, size, 1e3 * seconds / size, size / seconds))
    if vs_geant4:
        if source is None:
            raise CaloforgeError(
                "the model does not record its training source; no Geant4 baseline"
            )
        say(f"Geant4, {geant4_events} showers")
        result.geant4_ms_per_shower = geant4_ms_per_shower(
            model.detector, source, geant4_events, seed
        )
        result.geant4_events = geant4_events
    return result


def _compile(model, result: BenchResult):
    try:
        compiled = torch.compile(model.decode, dynamic=False)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled(torch.zeros(2, model.latent_dim), _some_conditions(model))
        return compiled
    except Exception as exc:  # the compiler stack fails in many ways; the bench goes on
        result.notes.append(f"torch.compile unavailable: {str(exc).splitlines()[0][:120]}")
        return None


def _some_conditions(model) -> torch.Tensor:
    lows = [model.config.condition_range[c][0] for c in model.config.conditions]
    return torch.tensor([lows, lows], dtype=torch.float32)


def machine_rates(threads: int) -> dict[str, float]:
    """GFLOP/s of a 1024² float32 matrix product and GB/s of a 256 MB copy, on ``threads``."""
    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    a @ a
    started, calls = time.perf_counter(), 20
    for _ in range(calls):
        a @ a
    gflops = 2 * 1024**3 * calls / (time.perf_counter() - started) / 1e9
    big = np.ones(1 << 26, np.float32)
    out = np.empty_like(big)
    np.copyto(out, big)
    started = time.perf_counter()
    for _ in range(5):
        np.copyto(out, big)
    gbs = 2 * big.nbytes * 5 / (time.perf_counter() - started) / 1e9
    return {"gflops": gflops, "gb_per_s": gbs}


def geant4_ms_per_shower(detector, source, n_events: int, seed: int) -> float:
    """Geant4's wall time per shower on one worker, initialisation excluded."""
    from caloforge.geant4.run import simulate

    if n_events < 2:
        raise CaloforgeError("the Geant4 baseline needs at least 2 events")
    stamps: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        simulate(
            detector,
            source,
            n_events,
            Path(tmp) / "g4.h5",
            seed=seed,
            jobs=1,
            chunk_size=1,
            progress=lambda done, total: stamps.append((done, time.perf_counter())),
        )
    (first_done, first_time), (last_done, last_time) = stamps[1], stamps[-1]
    return 1e3 * (last_time - first_time) / (last_done - first_done)
