import json

from caloforge.timing import bench


def test_bench_measures_every_backend_and_size(tiny_model):
    result = bench(tiny_model, backends=("torch", "onnx"), batch_sizes=(1, 64), repeats=1)
    assert {(p.backend, p.batch_size) for p in result.points} == {
        ("torch", 1),
        ("torch", 64),
        ("onnx", 1),
        ("onnx", 64),
    }
    assert all(p.ms_per_shower > 0 for p in result.points)
    summary = result.summary()
    assert summary["batch_size"] == 64
    assert abs(summary["ms_per_shower"] * summary["showers_per_s"] - 1000) < 1e-6


def test_bench_json_with_geant4(cli, tiny_model):
    code, stdout, _ = cli(
        "bench",
        str(tiny_model),
        "--backend",
        "torch",
        "--batch-sizes",
        "16",
        "--repeats",
        "1",
        "--vs-geant4",
        "--geant4-events",
        "3",
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    for key in ("ms_per_shower", "showers_per_s", "geant4_ms_per_shower", "speedup"):
        assert summary[key] > 0
    assert summary["speedup"] == summary["geant4_ms_per_shower"] / summary["ms_per_shower"]
