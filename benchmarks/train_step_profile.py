"""Where a training step's time goes, against the arithmetic it has to do.

For one family and a training file, measured in one process on this machine:

- ms per step, split into assembling the step's batches (indexing the transformed training
  split, as the training loop does) and ``train_step`` itself;
- the step's FLOPs (torch's FlopCounterMode: matrix products and convolutions, forward and
  backward), and the floor they set at the measured matrix-product rate (a 1024² float32
  product on the same threads);
- torch's profiler over the timed steps: the operators that take the most time, each with its
  share of the step, so that what is not arithmetic (copies, clipping, optimiser updates,
  element-wise work, convolutions that run far below the matrix rate) shows by name.

Usage: python benchmarks/train_step_profile.py FAMILY DATA.h5 [--batch-size 64]
       [--steps 5] [--threads 1] [--max-events 4000] [-o KEY=VALUE ...] [--json OUT.json]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from caloforge.cli import _options
from caloforge.models import get_family
from caloforge.timing import machine_rates
from caloforge.training.distributed import World
from caloforge.training.loop import TrainingSettings, _batch_indices, _Data, _new_model, _step_seed


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class _Steps:
    """The training loop's step, outside the loop: batches by its indices, noise by its seeds."""

    def __init__(self, family: str, data: Path, settings: TrainingSettings, options: dict):
        cls = get_family(family)
        dataset = _Data(data, settings, World(rank=0, size=1), fit_all=True)
        self.model = _new_model(cls, dataset, settings, options)
        made = self.model.to_training(dataset.showers, dataset.energy, dataset.conditions)
        self.train_set, self.dataset, self.settings = made, dataset, settings
        self.optimizers = self.model.optimizers()
        self.cache: dict = {}
        self.step = 0

    def batches(self):
        k, s = self.model.batches_per_step, self.settings
        out = []
        for j in range(k):
            idx = torch.as_tensor(
                _batch_indices(self.dataset, s.batch_size, 1, s.seed, self.step * k + j, self.cache)
            )
            t = self.train_set
            out.append(type(t)(t.showers[idx], t.conditions[idx], t.energy[idx]))
        return out

    def run(self, batches) -> None:
        generator = torch.Generator().manual_seed(_step_seed(self.settings.seed, self.step))
        self.model.train_step(batches, self.optimizers, generator, self.step)
        self.step += 1


def profile_step(family, data, *, batch_size, steps, threads, max_events, options) -> dict:
    torch.set_num_threads(threads)
    settings = TrainingSettings(batch_size=batch_size, seed=1, max_events=max_events)
    _say(f"{family}: preparing {max_events} events of {data}")
    run = _Steps(family, Path(data), settings, options)
    run.run(run.batches())  # warm-up: first-call allocations and kernel choices
    counter = FlopCounterMode(display=False)
    with counter:
        run.run(run.batches())
    flops = counter.get_total_flops()
    assemble = train = 0.0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            started = time.perf_counter()
            batches = run.batches()
            middle = time.perf_counter()
            run.run(batches)
            assemble += middle - started
            train += time.perf_counter() - middle
    rates = machine_rates(threads)
    step_ms = 1e3 * (assemble + train) / steps
    floor_ms = 1e3 * flops / (rates["gflops"] * 1e9)
    ops: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        ops[event.key] += event.self_cpu_time_total / 1e3 / steps
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:15]
    parameters = sum(p.numel() for p in run.model.parameters())
    return {
        "family": family,
        "data": str(data),
        "machine": f"{platform.machine()}, {threads} thread(s), torch {torch.__version__}",
        "options": options,
        "batch_size": batch_size,
        "batches_per_step": run.model.batches_per_step,
        "parameters": parameters,
        "steps_timed": steps,
        "ms_per_step": step_ms,
        "ms_assembling_batches": 1e3 * assemble / steps,
        "gflop_per_step": flops / 1e9,
        "machine_gflops": rates["gflops"],
        "arithmetic_floor_ms": floor_ms,
        "step_over_floor": step_ms / floor_ms if floor_ms else float("nan"),
        "top_operators_ms": {name: round(ms, 2) for name, ms in top},
    }


def render(r: dict) -> str:
    lines = [
        f"{r['family']} ({r['parameters'] / 1e6:.2f} M parameters), batch {r['batch_size']} × "
        f"{r['batches_per_step']} per step, {r['machine']}:",
        f"  {r['ms_per_step']:.1f} ms/step ({r['ms_assembling_batches']:.1f} assembling "
        f"batches); {r['gflop_per_step']:.2f} GFLOP/step at {r['machine_gflops']:.0f} GFLOP/s "
        f"= {r['arithmetic_floor_ms']:.1f} ms floor; step / floor {r['step_over_floor']:.1f}",
        "  operators, self time per step:",
    ]
    lines += [f"    {ms:9.2f} ms  {name}" for name, ms in r["top_operators_ms"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("data", type=Path)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=4000)
    parser.add_argument("-o", "--option", action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = profile_step(
        args.family,
        args.data,
        batch_size=args.batch_size,
        steps=args.steps,
        threads=args.threads,
        max_events=args.max_events,
        options=_options(args.option),
    )
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
