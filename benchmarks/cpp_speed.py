"""The C++ library against Python: ms/shower per batch size, in one run, with the same threads.

For each model (default: every pretrained one): `make cpp`, `caloforge export --out M.pt2`, then
in turn `caloforge-bench M.pt2` (C++, libtorch) and `caloforge bench` (Python: torch eager,
ONNX Runtime, and the same AOTInductor package through libtorch's Python binding), at batch 1,
100, 1 000 and 10 000, each point the median of --repeats timed calls after a warm-up. Batch 1
is what Geant4 asks for. Writes OUT/cpp_speed.json and OUT/cpp_speed.md.

Usage: python benchmarks/cpp_speed.py --out DIR [--models NAME ...] [--threads 1] [--repeats 3]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

from caloforge.models import load_model, pretrained_models
from caloforge.runtimes.aoti import export_aoti
from caloforge.timing import bench

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 100, 1000, 10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    subprocess.run(["make", "-s", "-C", str(ROOT), "cpp"], check=True)
    cpp_bench = ROOT / "build" / "cpp" / "caloforge-bench"
    rows = []
    for name in args.models or pretrained_models():
        package = export_aoti(load_model(name), args.out / f"{Path(name).name}.pt2")
        done = subprocess.run(
            [
                str(cpp_bench),
                str(package),
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
                "--batch-sizes",
                ",".join(map(str, SIZES)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpp = {int(k): v for k, v in json.loads(done.stdout)["ms_per_shower"].items()}
        python = bench(
            name, backends=("torch", "onnx", "aoti"), batch_sizes=SIZES, repeats=args.repeats
        )
        row = {"model": Path(name).name, "c++ aoti": cpp}
        for point in python.points:
            row.setdefault(f"python {point.backend}", {})[point.batch_size] = point.ms_per_shower
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {args.threads} thread(s) for every backend",
        "torch": torch.__version__,
        "rows": rows,
    }
    (args.out / "cpp_speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"`{summary['command']}` ({summary['machine']}), ms/shower", ""]
    lines.append("| model | runtime | " + " | ".join(f"batch {s:,}" for s in SIZES) + " |")
    lines.append("|---|---|" + "---|" * len(SIZES))
    for row in rows:
        for runtime in ("c++ aoti", "python aoti", "python onnx", "python torch"):
            cells = " | ".join(f"{row[runtime][s]:.4f}" for s in SIZES)
            lines.append(f"| `{row['model']}` | {runtime} | {cells} |")
    (args.out / "cpp_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
