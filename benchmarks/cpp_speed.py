"""Every runtime of every pretrained model: ms/shower per batch size and thread count, in one run.

For each model (default: every pretrained one), `make cpp`, then the model exported once as an
AOTInductor package and once as ONNX, and for 1 and 2 threads (every runtime on the same count):

- C++ AOTInductor: `caloforge-bench M.pt2` (libtorch, the C++ library as Geant4 links it);
- Python AOTInductor: the same package through libtorch's Python binding (``AotiSampler``);
- ONNX Runtime, and torch eager: `caloforge.timing.bench`,

at batch 1 (what a Geant4 event hands over), 10 and 1 000, each point a median of timed calls
after warm-up, noise drawing included. A model whose call at 1 000 would take more than
--max-call seconds (the 3DGAN, ~50 ms a shower) is timed at the largest power of ten under it.

What bounds each row, from two numbers measured here once per thread count, the matrix-product
rate (GFLOP/s, torch.mm of 1024²) and the memory read rate (GB/s, a copy of 256 MB): a point is
"arithmetic" when the model's multiply-adds (torch's FlopCounterMode: matrix products and
convolutions) at that rate take at least half its time, "weights" when reading its weights from
memory does, and otherwise "other", with the time per call beyond those two floors: the
runtime's own (Python, dispatch, thread hand-offs) and the element-wise work the count leaves out.

Writes OUT/cpp_speed.json and OUT/cpp_speed.md; `--render OUT/cpp_speed.json` writes the table
again from a saved run. Never run as a test.
Usage: python benchmarks/cpp_speed.py --out DIR [--models NAME ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from caloforge.models import load_model, pretrained_models
from caloforge.runtimes.aoti import export_aoti
from caloforge.runtimes.onnx import export_onnx
from caloforge.timing import bench, machine_rates

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 1000)
THREADS = (1, 2)
RUNTIMES = ("c++ aoti", "python aoti", "python onnx", "python torch")


def sizes_for(model, max_call_s: float) -> tuple[int, ...]:
    """SIZES, the largest capped at the power of ten whose call takes under ``max_call_s``."""
    row = [np.mean(model.config.condition_range[c]) for c in model.config.conditions]
    conditions = torch.tensor([row] * 10, dtype=torch.float32)
    noise = model.noise(10, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model.decode(noise, conditions)
        started = time.perf_counter()
        model.decode(noise, conditions)
    per_shower = (time.perf_counter() - started) / 10
    top = 10 ** int(np.clip(np.floor(np.log10(max_call_s / per_shower)), 1, 3))
    return (*SIZES[:-1], min(SIZES[-1], top))


def model_cost(model) -> dict[str, float]:
    """Multiply-add FLOPs per shower (at batch 10) and bytes of weights."""
    row = [np.mean(model.config.condition_range[c]) for c in model.config.conditions]
    conditions = torch.tensor([row] * 10, dtype=torch.float32)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.decode(model.noise(10, torch.Generator().manual_seed(0)), conditions)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"flops_per_shower": counter.get_total_flops() / 10, "weight_bytes": weights}


def bound(ms: float, batch: int, row: dict, rates: dict) -> str:
    """What bounds a point (module docstring)."""
    arithmetic = row["flops_per_shower"] * batch / (rates["gflops"] * 1e9)
    weights = row["weight_bytes"] / (rates["gb_per_s"] * 1e9)
    call = ms * batch / 1e3
    floor = max(arithmetic, weights)
    if floor >= call / 2:
        return "arithmetic" if arithmetic >= weights else "weights"
    return f"other, {1e6 * (call - floor):.0f} µs/call"


def render(summary: dict) -> str:
    """The markdown table of a run."""
    lines = [
        f"`{summary['command']}` ({summary['machine']}, torch {summary['torch']}): ms/shower "
        "(what bounds it)",
        "",
        "| model | runtime | threads | " + " | ".join(f"batch {s:,}" for s in SIZES) + " |",
        "|---|---|---|" + "---|" * len(SIZES),
    ]
    for row in summary["rows"]:
        cells = []
        for size in SIZES:
            point = row[str(size)]
            at = "" if point["batch"] == size else f" at batch {point['batch']:,}"
            rates = summary["rates"][str(row["threads"])]
            kind = bound(point["ms_per_shower"], point["batch"], row, rates)
            cells.append(f"{point['ms_per_shower']:.4f} ({kind}{at})")
        lines.append(
            f"| `{row['model']}` | {row['runtime']} | {row['threads']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="a saved cpp_speed.json to tabulate again")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-call", type=float, default=10.0, help="seconds (see above)")
    args = parser.parse_args()
    if args.render:
        table = render(json.loads(args.render.read_text()))
        args.render.with_suffix(".md").write_text(table)
        print(table, end="")
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT), "cpp"], check=True)
    cpp_bench = ROOT / "build" / "cpp" / "caloforge-bench"
    rates = {str(threads): machine_rates(threads) for threads in THREADS}
    print(json.dumps({"rates": rates}), flush=True)
    rows = []
    for name in args.models or pretrained_models():
        model = load_model(name)
        short = Path(name).name
        exported = {
            "aoti": export_aoti(model, args.out / f"{short}.pt2"),
            "onnx": export_onnx(model, args.out / f"{short}.onnx"),
        }
        cost = model_cost(model)
        sizes = sizes_for(model, args.max_call)
        for threads in THREADS:
            torch.set_num_threads(threads)
            done = subprocess.run(
                [
                    *(str(cpp_bench), str(exported["aoti"]), "--threads", str(threads)),
                    *("--repeats", str(args.repeats), "--batch-sizes", ",".join(map(str, sizes))),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            times = {
                "c++ aoti": {int(k): v for k, v in json.loads(done.stdout)["ms_per_shower"].items()}
            }
            python = bench(
                name,
                backends=("aoti", "onnx", "torch"),
                batch_sizes=sizes,
                repeats=args.repeats,
                exported=exported,
            )
            for point in python.points:
                times.setdefault(f"python {point.backend}", {})[point.batch_size] = (
                    point.ms_per_shower
                )
            for runtime in RUNTIMES:
                row = {"model": short, "runtime": runtime, "threads": threads, **cost}
                for column, size in zip(SIZES, sizes):
                    row[str(column)] = {"batch": size, "ms_per_shower": times[runtime][size]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "rates": rates,
        "rows": rows,
    }
    (args.out / "cpp_speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = render(json.loads(json.dumps(summary)))
    (args.out / "cpp_speed.md").write_text(table)
    print(table, end="")


if __name__ == "__main__":
    main()
