"""Peak memory of generating many showers: generation must stream with bounded memory.

Runs `caloforge generate MODEL --n N --source S` in a child process and reads its peak
resident memory (ru_maxrss) and wall time. With the default 1 000 000 lhcb-ecal showers the
peak must stay well under 2 GB, however large the output file.

Usage: python benchmarks/generate_memory.py [--model lhcb-ecal-wgan] [--n 1000000]
       [--batch-size 1000] [--backend onnx]
Prints one line and one JSON line. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lhcb-ecal-wgan")
    parser.add_argument("--source", default="lhcb")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--backend", default="onnx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "generated.h5"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,  # this interpreter's caloforge, venv activated or not
                "-m",
                "caloforge",
                "generate",
                args.model,
                "--n",
                str(args.n),
                "--source",
                args.source,
                "--batch-size",
                str(args.batch_size),
                "--backend",
                args.backend,
                "--out",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        size = out.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"{args.n} showers, batch {args.batch_size}, {args.backend}: peak RSS {peak_mb:.0f} MB, "
        f"{seconds:.0f} s, file {size / 1e9:.2f} GB"
    )
    print(
        json.dumps(
            {
                "n": args.n,
                "batch_size": args.batch_size,
                "backend": args.backend,
                "peak_rss_mb": peak_mb,
                "seconds": seconds,
                "file_bytes": size,
            }
        )
    )


if __name__ == "__main__":
    main()
