"""``demo``: the whole pipeline on a fresh machine in a few minutes.

It simulates a few hundred lhcb-ecal showers with Geant4, generates showers for the same
conditions with the default model, times the model on 10 000 more, evaluates the
generated showers against Geant4 and writes the report. The Geant4 time per shower is measured
in the same run, on the same source, per worker process (one core), so the speed-up is a ratio
of two measurements made minutes apart on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caloforge.errors import CaloforgeError

__all__ = ["DEMO_MODEL", "DemoResult", "demo"]

DEMO_MODEL = "lhcb-ecal-fm-student"
"""The pretrained lhcb-ecal model that is both more faithful and faster than the LHCb seed's
WGAN on 10 000 held-out showers (README, the frontier table)."""


@dataclass(frozen=True)
class DemoResult:
    out: Path
    metrics: dict[str, Any]
    geant4_ms_per_shower: float
    model_ms_per_shower: float
    model_backend: str
    model_batch: int
    n_geant4: int
    n_timing: int

    @property
    def speedup(self) -> float:
        return self.geant4_ms_per_shower / self.model_ms_per_shower


def demo(
    out: str | Path,
    *,
    model: str | Path = DEMO_MODEL,
    n_geant4: int = 300,
    n_timing: int = 10_000,
    jobs: int = 2,
    seed: int = 0,
    stage: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (geant4.h5, generated.h5, metrics.json, report.html).

    The demo's own files in ``out`` are replaced on every run.
    """
    from caloforge.detectors import load_detector
    from caloforge.evaluation.evaluate import evaluate, write_metrics
    from caloforge.evaluation.report import write_report
    from caloforge.geant4.run import simulate
    from caloforge.generation import DEFAULT_BATCH_SIZE, generate
    from caloforge.models import load_model
    from caloforge.sources import load_source
    from caloforge.timing import bench

    say = stage or (lambda _: None)
    if n_geant4 < 20 or n_timing < 1:
        raise CaloforgeError("the demo needs at least 20 Geant4 showers and 1 timing shower")
    detector = load_model(model).detector.name
    if detector != "lhcb-ecal":
        raise CaloforgeError(f"the demo simulates lhcb-ecal; {model} is a {detector} model")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    geant4_file, generated_file = out / "geant4.h5", out / "generated.h5"

    say(f"1/4 Geant4: {n_geant4} lhcb-ecal showers of the LHCb source on {jobs} workers")
    stamps: list[tuple[int, float]] = []

    def simulated(done: int, total: int) -> None:
        stamps.append((done, time.perf_counter()))
        if progress is not None:
            progress(done, total)

    simulate(
        load_detector("lhcb-ecal"),
        load_source("lhcb"),
        n_geant4,
        geant4_file,
        seed=seed,
        jobs=jobs,
        chunk_size=5,
        overwrite=True,
        progress=simulated,
    )
    # Per-core time per shower, from the first finished chunk on (start-up excluded).
    (done0, t0), (done1, t1) = stamps[1], stamps[-1]
    geant4_ms = 1e3 * (t1 - t0) * jobs / (done1 - done0)

    say(f"2/4 model: showers for the same {n_geant4} conditions")
    generate(model, generated_file, conditions_from=geant4_file, seed=seed, overwrite=True)

    say(f"3/4 model: timing {n_timing} more showers")
    # Batches of generate's default size, repeated until n_timing showers are timed.
    batch = min(n_timing, DEFAULT_BATCH_SIZE)
    timing = bench(
        model,
        backends=("torch", "onnx"),
        batch_sizes=(batch,),
        repeats=max(1, n_timing // batch),
        seed=seed + 1,
    )
    best = timing.best

    say("4/4 evaluation against Geant4")
    evaluation = evaluate(generated_file, geant4_file, seed=seed, quick=True)
    write_metrics(evaluation, out)
    write_report(evaluation, out)
    return DemoResult(
        out=out,
        metrics=evaluation.metrics,
        geant4_ms_per_shower=geant4_ms,
        model_ms_per_shower=best.ms_per_shower,
        model_backend=best.backend,
        model_batch=best.batch_size,
        n_geant4=n_geant4,
        n_timing=n_timing,
    )
