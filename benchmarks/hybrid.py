"""A model inside Geant4 against full Geant4: fidelity and time per event, measured in one run.

For one detector, source and seed (the same primaries in every file), on one core each:

1. full Geant4, N events (or the first N of ``--reference``, a full file of the same run, with
   ``--timing-events`` fresh full events timed);
2. full Geant4 with the hybrid's stepping action installed but never taking a particle
   (threshold above every energy): the cost of the Python callback on every step;
3. the hybrid (``simulate --fast MODEL``), N events;
4. the model alone on the hybrid's hand-offs (its conditions, batched per chunk of events as the
   workers batch them): the model's share of the hybrid's time;
5. ``caloforge evaluate`` of the hybrid against full Geant4 (CaloChallenge's classifier unless
   --quick).

Writes OUT/hybrid.json and OUT/hybrid.md (with the commands), and the evaluation's metrics.json
and report.html in OUT/evaluation/.

Usage: python benchmarks/hybrid.py --model lhcb-ecal-fm-student --detector lhcb-ecal
       --source lhcb --seed 200 --n 2000 --out DIR [--upstream G4_Al:178] [--reference FULL.h5]
       [--timing-events 200] [--quick]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from caloforge.data.showerfile import ShowerFile, copy_events
from caloforge.detectors import load_detector
from caloforge.evaluation.evaluate import evaluate, write_metrics
from caloforge.evaluation.report import write_report
from caloforge.geant4.fast import fast_spec
from caloforge.geant4.run import default_chunk, simulate
from caloforge.generation import decoder
from caloforge.models import load_model
from caloforge.sources import load_source


def _simulate(name: str, out: Path, n: int, **kwargs) -> dict:
    """Simulate into OUT/NAME.h5; the time per event is the steady state's, from the end of the
    first chunk to the end (the worker's start-up, Geant4's initialisation and the model's
    loading, a few seconds once per worker, left out)."""
    path = out / f"{name}.h5"
    marks: list[tuple[int, float]] = []

    def progress(done: int, planned: int) -> None:
        marks.append((done, time.perf_counter()))

    result = simulate(
        kwargs.pop("detector"),
        kwargs.pop("source"),
        n,
        path,
        overwrite=True,
        jobs=1,
        progress=progress,
        **kwargs,
    )
    (first, t0), (last, t1) = marks[1], marks[-1]
    row = {
        "events": result.n_new,
        "seconds_total": result.seconds,
        "timed_events": last - first,
        "ms_per_event": 1e3 * (t1 - t0) / (last - first),
        "file": str(path),
    }
    print(f"{name}: {row['ms_per_event']:.1f} ms/event over {last - first} events", flush=True)
    return row


def _model_alone(model_name: str, hybrid: Path, chunk: int) -> dict:
    """Time the model on the hybrid's hand-offs, in chunks of events as a worker batches them."""
    model = load_model(model_name)
    torch.set_num_threads(1)
    decode = decoder(model, "onnx", threads=1)
    extras = ShowerFile(hybrid).read(check=False).extras
    per_event = extras["fast_showers"].astype(int)
    # The hand-offs' own conditions are not stored; the model's cost depends on their number
    # (batch size), so mid-range conditions stand in for them.
    row = np.array([np.mean(model.config.condition_range[c]) for c in model.config.conditions])
    generator = torch.Generator().manual_seed(0)
    seconds = 0.0
    for first in range(0, len(per_event), chunk):
        m = int(per_event[first : first + chunk].sum())
        if m == 0:
            continue
        noise = model.noise(m, generator).numpy()
        conditions = np.repeat(row[None], m, axis=0).astype(np.float32)
        started = time.perf_counter()
        decode(noise, conditions)
        seconds += time.perf_counter() - started
    showers = int(per_event.sum())
    return {
        "showers": showers,
        "seconds": seconds,
        "ms_per_event": 1e3 * seconds / len(per_event),
        "ms_per_shower": 1e3 * seconds / max(showers, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--seed", type=int, default=200)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--upstream", help="MATERIAL:MM in front of the detector")
    parser.add_argument("--reference", type=Path, help="a full Geant4 file of the same run")
    parser.add_argument("--timing-events", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    detector = load_detector(args.detector)
    if args.upstream:
        material, _, mm = args.upstream.partition(":")
        detector = detector.with_upstream(material, float(mm))
    source = load_source(args.source)
    run = {"detector": detector, "source": source, "seed": args.seed}
    spec = fast_spec(args.model, detector)
    chunk = default_chunk(args.n, 1, fast=True)  # simulate's chunk for one worker

    rows: dict[str, dict] = {}
    if args.reference:
        reference = args.out / "full.h5"
        copy_events(args.reference, reference.with_suffix(".tmp.h5"), n=args.n)
        reference.with_suffix(".tmp.h5").replace(reference)
        rows["full"] = _simulate("full-timing", args.out, args.timing_events, **run)
    else:
        rows["full"] = _simulate("full", args.out, args.n, **run)
        reference = Path(rows["full"]["file"])
    never = fast_spec(args.model, detector, threshold=1e12)
    rows["full_with_trigger"] = _simulate(
        "full-trigger", args.out, args.timing_events, fast=never, **run
    )
    rows["hybrid"] = _simulate("hybrid", args.out, args.n, fast=spec, chunk_size=chunk, **run)
    hybrid = Path(rows["hybrid"]["file"])
    rows["model_alone"] = _model_alone(args.model, hybrid, chunk)

    written = ShowerFile(hybrid)
    extras = written.read(check=False).extras
    fast_n, full_n = int(extras["fast_showers"].sum()), int(extras["full_showers"].sum())
    started = time.perf_counter()
    evaluation = evaluate(hybrid, reference, quick=args.quick, seed=0)
    folder = args.out / "evaluation"
    write_metrics(evaluation, folder)
    write_report(evaluation, folder)
    m = evaluation.metrics
    print(f"evaluated in {time.perf_counter() - started:.0f} s", flush=True)

    full_ms, hybrid_ms = rows["full"]["ms_per_event"], rows["hybrid"]["ms_per_event"]
    model_ms = rows["model_alone"]["ms_per_event"]
    summary = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, one core per simulation",
        "model": args.model,
        "detector": detector.name,
        "upstream": args.upstream,
        "events": args.n,
        "runs": rows,
        "hand_offs": {
            "fast_showers": fast_n,
            "full_above_threshold": full_n,
            "fraction_fast": fast_n / max(fast_n + full_n, 1),
            "events_all_fast": float(np.mean(extras["full_showers"] == 0)),
            # Geant4's share of the visible energy in the calorimeter: particles below the
            # threshold, fallbacks, and what the upstream material's shower sends in.
            "visible_fraction_from_geant4": float(
                extras["energy_active"].sum() / written.read(check=False).showers.sum()
            ),
            "fallbacks_by_reason": json.loads(written.attrs["fast_fallbacks"]),
            "threshold_mev": spec.threshold,
        },
        "speed": {
            "hybrid_speedup": full_ms / hybrid_ms,
            "events_per_second_full": 1e3 / full_ms,
            "events_per_second_hybrid": 1e3 / hybrid_ms,
            "callback_overhead_on_full": rows["full_with_trigger"]["ms_per_event"] / full_ms,
            "hybrid_ms_model": model_ms,
            "hybrid_ms_geant4_and_callbacks": hybrid_ms - model_ms,
            "model_speedup_alone": full_ms / max(rows["model_alone"]["ms_per_shower"], 1e-9),
        },
        "fidelity": {
            "auc_cells": m.get("auc_cells_network"),
            "auc_features": m.get("auc_features"),
            "fpd_x1e3": m["fpd_x1e3"],
            "fpd_err_x1e3": m["fpd_x1e3_err"],
            "worst_separation": max(m["separation_power"].items(), key=lambda kv: kv[1]),
            "classifier": "quick" if args.quick else "CaloChallenge",
        },
    }
    (args.out / "hybrid.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    s = summary["speed"]
    lines = [
        f"`{summary['command']}`",
        "",
        "| | ms/event | events/s |",
        "|---|---|---|",
        f"| full Geant4 | {full_ms:.1f} | {1e3 / full_ms:.2f} |",
        f"| full Geant4 + stepping trigger (never fires) | "
        f"{rows['full_with_trigger']['ms_per_event']:.1f} | |",
        f"| hybrid ({args.model}) | {hybrid_ms:.2f} | {1e3 / hybrid_ms:.1f} |",
        f"| of which the model | {model_ms:.2f} | |",
        "",
        f"hybrid speed-up {s['hybrid_speedup']:.0f}x; the model alone "
        f"{s['model_speedup_alone']:.0f}x per shower; "
        f"{100 * summary['hand_offs']['fraction_fast']:.1f} % of e+-/gamma above threshold fast; "
        f"fidelity {json.dumps(summary['fidelity'])}",
    ]
    (args.out / "hybrid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
