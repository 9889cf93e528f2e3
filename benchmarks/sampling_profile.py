"""Where a model's sampling time goes, on its fastest backend (ONNX Runtime on a CPU).

For one model, measured in one run on this machine:

- ms/shower for 1 and all threads at batches of 100, 1 000 and 10 000 (ONNX Runtime);
- the time per operator type and per node of the graph (ONNX Runtime's profiler, batch 10 000);
- float32 against int8 (dynamic quantisation of the matrix products, onnxruntime.quantization)
  and float16 where ONNX Runtime's CPU provider runs it, each with the largest change it makes
  to a shower (relative to that shower's total energy);
- torch eager against torch.compile;
- the bounds: the multiply-adds per shower over the measured matrix-product throughput (the
  compute floor) and 3.6 kB per shower over the measured memory-copy bandwidth (the floor of
  writing the output).

Usage: python benchmarks/sampling_profile.py MODEL [--json OUT.json]
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from caloforge.models import load_model
from caloforge.runtimes.onnx import export_onnx
from caloforge.timing import _conditions, _timer

BATCHES = (100, 1000, 10_000)
REPEATS = 5


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _session(path: Path, threads: int, profile_dir: Path | None = None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(model, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    conditions, _ = _conditions(model, n, seed)
    noise = np.random.default_rng(seed).standard_normal((n, model.latent_dim))
    return {"noise": noise.astype(np.float32), "conditions": conditions.astype(np.float32)}


def _multiply_adds(path: Path) -> int:
    """Multiply-adds per shower of the graph's matrix products (Gemm, MatMul)."""
    graph = onnx.load(str(path)).graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            weight = shapes.get(node.input[1])
            if weight and len(weight) == 2:
                total += weight[0] * weight[1]
    return total


def _matmul_gflops(threads: int) -> float:
    torch.set_num_threads(threads)
    a, w = torch.randn(1000, 1024), torch.randn(1024, 1024)
    seconds = _timer(lambda: a @ w, repeats=20)
    return 2 * 1000 * 1024 * 1024 / seconds / 1e9


def _copy_bandwidth() -> float:
    """Bytes per second of a large memory copy (read + write counted once: the output's)."""
    src = np.ones(100_000_000 // 4, np.float32)
    dst = np.empty_like(src)
    seconds = _timer(lambda: np.copyto(dst, src), repeats=5)
    return src.nbytes / seconds


def _profile(path: Path, feeds: dict, threads: int) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(path, threads, Path(tmp))
        for _ in range(3):
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text())
    by_type: dict[str, float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"]["op_name"]] += event["dur"]
            by_node[event["name"].removesuffix("_kernel_time")] += event["dur"]
    total = sum(by_type.values())
    top = dict(sorted(by_node.items(), key=lambda kv: -kv[1])[:8])
    return (
        {k: v / total for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        {k: v / total for k, v in top.items()},
    )


def _variant_row(path: Path, feeds: dict, threads: int, reference: np.ndarray) -> dict:
    try:
        session = _session(path, threads)
        (out,) = session.run(["showers"], feeds)
    except Exception as exc:
        return {"error": str(exc).splitlines()[0][:160]}
    seconds = _timer(lambda: session.run(["showers"], feeds), REPEATS)
    totals = reference.sum(axis=1, keepdims=True)
    change = np.abs(out.astype(np.float64) - reference).sum(axis=1, keepdims=True) / totals
    return {
        "ms_per_shower": 1e3 * seconds / len(reference),
        "largest_change_over_E_tot": float(change.max()),
        "median_change_over_E_tot": float(np.median(change)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    cores = len(os.sched_getaffinity(0))
    result: dict = {"model": args.model, "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx")
        feeds = {n: _feeds(model, n) for n in BATCHES}
        _say("ONNX Runtime: threads and batch sizes")
        timings = {}
        for threads in sorted({1, cores}):
            session = _session(path, threads)
            for n in BATCHES:
                seconds = _timer(lambda s=session, f=feeds[n]: s.run(None, f), REPEATS)
                timings[f"threads={threads}, batch={n}"] = 1e3 * seconds / n
        result["onnx_ms_per_shower"] = timings
        big = feeds[BATCHES[-1]]
        _say("ONNX Runtime's profiler")
        result["time_by_operator"], result["slowest_nodes"] = _profile(path, big, cores)
        (reference,) = _session(path, cores).run(["showers"], big)
        reference = reference.astype(np.float64)
        _say("precisions")
        variants = {"float32": path}
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = Path(tmp) / "int8.onnx"
        logging.disable(logging.WARNING)  # the quantiser logs every tensor it leaves alone
        quantize_dynamic(str(path), str(int8), weight_type=QuantType.QInt8)
        logging.disable(logging.NOTSET)
        variants["int8 (dynamic)"] = int8
        try:
            from onnxconverter_common import float16

            half = Path(tmp) / "fp16.onnx"
            onnx.save(float16.convert_float_to_float16(onnx.load(str(path))), str(half))
            variants["float16"] = half
        except ImportError:
            result["float16"] = "not measured: onnxconverter-common is not installed"
        result["precision"] = {
            name: _variant_row(p, big, cores, reference) for name, p in variants.items()
        }
        macs = _multiply_adds(path)
    n = BATCHES[-1]
    cond = torch.as_tensor(big["conditions"])
    noise = torch.as_tensor(big["noise"])
    torch.set_num_threads(cores)
    _say("torch eager and torch.compile")
    with torch.inference_mode():
        result["torch_eager_ms_per_shower"] = (
            1e3 * _timer(lambda: model.decode(noise, cond), REPEATS) / n
        )
        try:
            compiled = torch.compile(model.decode, dynamic=False)
            result["torch_compile_ms_per_shower"] = (
                1e3 * _timer(lambda: compiled(noise, cond), REPEATS) / n
            )
        except Exception as exc:
            result["torch_compile_ms_per_shower"] = f"unavailable: {str(exc).splitlines()[0]}"
    _say("bounds")
    gflops = _matmul_gflops(cores)
    bandwidth = _copy_bandwidth()
    out_bytes = 4 * model.detector.n_cells
    result["bounds"] = {
        "multiply_adds_per_shower": macs,
        "matmul_gflops_measured": gflops,
        "compute_floor_ms_per_shower": 1e3 * 2 * macs / (gflops * 1e9),
        "copy_bandwidth_gb_s": bandwidth / 1e9,
        "output_bytes_per_shower": out_bytes,
        "output_floor_ms_per_shower": 1e3 * out_bytes / bandwidth,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
