"""Where a hybrid event's time goes: Geant4's event loop, caloforge's Python around it, the model.

One process, one core, one Geant4 application as a worker builds it, CHUNK events at a time; the
wall time of every part is summed over the timed chunks (the first is left out) and divided by the
events:

- chunk preparation: the chunk's primaries and per-event seeds;
- primary generation: Geant4's reseeding and the particle gun (``GeneratePrimaries``);
- trigger: the Python sensitive detector in front of the face, with the model's range check;
- hit reading: the event's hit maps into its row (``EndOfEventAction``);
- model: the network on the chunk's showers; hand-off: their noise, order and sum into the rows;
- Geant4 and the rest: what remains of ``BeamOn`` (Geant4's C++, the calls into Python).

The floor, measured the same way on the next events of the run: every particle killed at the
face, no model (Geant4's event loop with the same three Python actions, and nothing taken).

With upstream material the floor is the upstream shower's own cost: nothing it sends reaches the
calorimeter, so the hybrid's excess over it is the model and Geant4 tracking, inside the
calorimeter, what the model does not take (below its threshold, or fallen back).

Usage: python benchmarks/hybrid_profile.py [--model lhcb-ecal-fm-student] [--detector lhcb-ecal]
       [--source lhcb] [--upstream G4_Al:178] [--chunk 250] [--chunks 8] [--out DIR]
Writes OUT/hybrid_profile.json and prints a table. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import caloforge.geant4.app as geant4_app
from caloforge.detectors import elements_of_detector, load_detector
from caloforge.geant4 import datasets
from caloforge.geant4.fast import fast_spec
from caloforge.geant4.run import event_seeds
from caloforge.sources import load_source, sample_primaries

PARTS = ("chunk preparation", "primary generation", "trigger", "hit reading", "model", "hand-off")


class Profiler:
    """One Geant4 application (one per process), its parts wrapped in timers."""

    def __init__(self, detector, source, spec, seed: int):
        self.source, self.seed = source, seed
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.timing = False
        self.take = True
        make_trigger = geant4_app._make_trigger

        def trigger(g4, app, handler):
            def offer(*particle):
                return handler(*particle) if self.take else True

            return self._timed("trigger", make_trigger(g4, app, offer))

        geant4_app._make_trigger = trigger
        data = datasets.resolve_data(elements_of_detector(detector))
        try:
            app = geant4_app.Geant4App(
                detector, data, "emstandard", 0.7, fast=spec, flight_mm=source.flight
            )
        finally:
            geant4_app._make_trigger = make_trigger
        app.record = self._timed("hit reading", app.record)
        gun = type(app._gun)
        gun.GeneratePrimaries = self._timed("primary generation", gun.GeneratePrimaries)
        app.fast.decode = self._timed("model", app.fast.decode)
        app.fast.deposit = self._timed("hand-off", app.fast.deposit)
        self.app = app

    def _timed(self, part: str, function):
        def call(*args):
            if not self.timing:
                return function(*args)
            started = time.perf_counter()
            result = function(*args)
            self.seconds[part] += time.perf_counter() - started
            return result

        return call

    def run(self, chunk: int, chunks: int, take: bool, first: int) -> dict:
        """µs per event of each part over ``chunks`` chunks after one untimed."""
        self.take = take
        self.seconds = dict.fromkeys(PARTS, 0.0)
        total = 0.0
        for k in range(chunks + 1):
            self.timing = k > 0
            a, b = first + k * chunk, first + (k + 1) * chunk
            started = time.perf_counter()
            primaries = sample_primaries(self.source, a, b, self.seed)
            seeds = event_seeds(self.seed, a, b)
            prepared = time.perf_counter()
            self.app.run(primaries, seeds, a, self.seed)
            if self.timing:
                self.seconds["chunk preparation"] += prepared - started
                total += time.perf_counter() - started
        self.timing = False
        n = chunk * chunks
        self.seconds["hand-off"] -= self.seconds["model"]
        row = {part: 1e6 * s / n for part, s in self.seconds.items()}
        row["Geant4 and the rest"] = 1e6 * total / n - sum(row.values())
        row["total"] = 1e6 * total / n
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lhcb-ecal-fm-student")
    parser.add_argument("--detector", default="lhcb-ecal")
    parser.add_argument("--source", default="lhcb")
    parser.add_argument("--upstream", help="MATERIAL:MM in front of the detector")
    parser.add_argument("--seed", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    detector, source = load_detector(args.detector), load_source(args.source)
    if args.upstream:
        material, _, mm = args.upstream.partition(":")
        detector = detector.with_upstream(material, float(mm))
    spec = fast_spec(args.model, detector)
    profiler = Profiler(detector, source, spec, args.seed)
    events = args.chunk * (args.chunks + 1)
    runs = {
        "hybrid": profiler.run(args.chunk, args.chunks, True, 0),
        "killed at the face, no model": profiler.run(args.chunk, args.chunks, False, events),
    }
    summary = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, one process, one core",
        "events": args.chunk * args.chunks,
        "us_per_event": runs,
    }
    names = [*PARTS, "Geant4 and the rest", "total"]
    print(f"`{summary['command']}` ({summary['machine']})\n")
    print("| µs per event | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{run[name]:.1f}" for run in runs.values()) + " |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hybrid_profile.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
