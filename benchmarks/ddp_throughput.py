"""Training throughput with 1 and more processes on this machine, and the share of communication.

Trains FAMILY on DATA for --steps steps at a global batch of --batch-size, once per setting:
one process with torch's default threads, one process with one thread, and N processes of one
thread each (`caloforge train --nproc N`, torchrun, gloo). Throughput is showers per second
between the first and the last logged step (start-up, data loading and the final evaluation left
out); the communication share is the time rank 0 spent in the gradient all-reduce (waiting for the
slower rank included) over that time. Writes OUT/ddp_throughput.json and .md.

Usage: python benchmarks/ddp_throughput.py DATA --out DIR [--family flow-matching]
       [--steps 200] [--batch-size 512] [--nproc 2] [-o KEY=VALUE ...]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def _run(name: str, args, out: Path, nproc: int, threads: int | None) -> dict:
    folder = out / name
    command = [
        sys.executable, "-m", "caloforge", "train", args.family, "--data", str(args.data),
        "--out", str(folder), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--eval-every", str(10 * args.steps), "--checkpoint-every", str(10 * args.steps),
        "--overwrite", "--nproc", str(nproc),
    ] + [x for o in args.option for x in ("-o", o)]  # fmt: skip
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    records = [json.loads(x) for x in (folder / "training_log.jsonl").read_text().splitlines()]
    timed = [r for r in records if "seconds" in r]
    first, last = timed[0], timed[-1]
    seconds = last["seconds"] - first["seconds"]
    showers = (last["step"] - first["step"]) * args.batch_size
    row = {
        "setting": name,
        "processes": nproc,
        "threads_per_process": threads or "torch default",
        "steps_timed": last["step"] - first["step"],
        "showers_per_second": showers / seconds,
    }
    if "allreduce_seconds" in last:
        comm = last["allreduce_seconds"] - first["allreduce_seconds"]
        row["communication_share"] = comm / seconds
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--family", default="flow-matching")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("-o", "--option", action="append", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        _run("1 process", args, args.out, 1, None),
        _run("1 process, 1 thread", args, args.out, 1, 1),
        _run(f"{args.nproc} processes", args, args.out, args.nproc, 1),
    ]
    base = rows[1]["showers_per_second"]
    summary = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    (args.out / "ddp_throughput.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"`{summary['command']}` ({summary['machine']})",
        "",
        "| setting | showers/s | vs 1 process of 1 thread | communication share |",
        "|---|---|---|---|",
    ]
    for r in rows:
        comm = r.get("communication_share")
        lines.append(
            f"| {r['setting']} ({r['threads_per_process']} threads) | "
            f"{r['showers_per_second']:.0f} | {r['showers_per_second'] / base:.2f}× | "
            f"{'' if comm is None else f'{100 * comm:.0f} %'} |"
        )
    (args.out / "ddp_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
