import numpy as np
import pytest

from caloforge.data.showerfile import CaloforgeWarning, ShowerFile, partial_path
from caloforge.errors import CaloforgeError
from caloforge.generation import generate
from caloforge.sources import load_source, with_energy

# A 270-event training set has a narrow condition range; its warnings are tested once below.
pytestmark = pytest.mark.filterwarnings("ignore::caloforge.data.showerfile.CaloforgeWarning")


def test_generate_from_conditions_of_a_file(tmp_path, tiny_model, lhcb_like):
    out = generate(
        tiny_model, tmp_path / "gen.h5", conditions_from=lhcb_like, batch_size=64, seed=3
    ).path
    gen, ref = ShowerFile(out), ShowerFile(lhcb_like)
    assert len(gen) == len(ref) and gen.complete
    assert np.array_equal(gen.read().conditions, ref.read().conditions)
    assert gen.producer["kind"] == "model" and gen.producer["family"] == "wgan-gp-lhcb"
    assert gen.seed == 3 and gen.detector == ref.detector
    showers = gen.read().showers
    assert showers.shape == (len(ref), 900) and showers.min() >= 0


def test_same_seed_same_file_and_backends_agree(tmp_path, tiny_model):
    kw = dict(n=50, source="lhcb", batch_size=20, seed=9)
    a = ShowerFile(generate(tiny_model, tmp_path / "a.h5", **kw).path).read().showers
    b = ShowerFile(generate(tiny_model, tmp_path / "b.h5", **kw).path).read().showers
    c = ShowerFile(generate(tiny_model, tmp_path / "c.h5", backend="onnx", **kw).path).read()
    assert np.array_equal(a, b)
    np.testing.assert_allclose(c.showers, a, rtol=1e-5, atol=1e-5)
    other = generate(tiny_model, tmp_path / "d.h5", n=50, source="lhcb", batch_size=20, seed=10)
    assert not np.array_equal(ShowerFile(other.path).read().showers, a)


def test_interrupted_generation_resumes_to_the_same_file(tmp_path, tiny_model):
    kw = dict(n=60, source="lhcb", batch_size=20, seed=4)
    whole = ShowerFile(generate(tiny_model, tmp_path / "whole.h5", **kw).path).read().showers

    def stop(done, total):
        if done == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tiny_model, tmp_path / "cut.h5", progress=stop, **kw)
    assert len(ShowerFile(partial_path(tmp_path / "cut.h5"))) == 40
    result = generate(tiny_model, tmp_path / "cut.h5", resume=True, **kw)
    assert np.array_equal(ShowerFile(result.path).read().showers, whole)


def test_conditions_outside_training_range_warn(tmp_path, tiny_model):
    high = with_energy(load_source("lhcb"), energy=100_000.0)
    with pytest.warns(CaloforgeWarning, match="outside the training range"):
        generate(tiny_model, tmp_path / "w.h5", n=5, source=high, seed=0)


def test_bad_requests(tmp_path, tiny_model, lhcb_like):
    with pytest.raises(CaloforgeError, match="batch_size: must be positive"):
        generate(tiny_model, tmp_path / "x.h5", n=5, source="lhcb", batch_size=0)
    with pytest.raises(CaloforgeError, match="either"):
        generate(tiny_model, tmp_path / "x.h5")
    with pytest.raises(CaloforgeError, match="needs conditions"):
        generate(tiny_model, tmp_path / "x.h5", n=5, source="atlas")
    with pytest.raises(CaloforgeError, match="no model directory"):
        generate(tmp_path / "missing", tmp_path / "x.h5", n=5, source="lhcb")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CaloforgeError, match="corrupt"):
        generate(broken, tmp_path / "x.h5", n=5, source="lhcb")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CaloforgeError, match="not valid JSON"):
        generate(broken, tmp_path / "x.h5", n=5, source="lhcb")


def test_model_for_another_detector_is_refused(tmp_path, tiny_model):
    from caloforge.data.showerfile import ShowerBatch, ShowerWriter
    from caloforge.detectors import load_detector

    det = load_detector("clic-ecal")
    attrs = {"detector": det.to_yaml()}
    path = tmp_path / "clic.h5"
    names = ("px", "py", "pz", "x", "y")
    with ShowerWriter.create(path, n_cells=det.n_cells, condition_names=names, attrs=attrs) as w:
        w.append(ShowerBatch(np.zeros((2, det.n_cells), np.float32), [1e4, 1e4], np.ones((2, 5))))
    with pytest.raises(CaloforgeError, match="model is for detector 'lhcb-ecal'"):
        generate(tiny_model, tmp_path / "x.h5", conditions_from=path)


def test_cli_batch_size_error(cli, tmp_path, tiny_model):
    code, _, stderr = cli(
        "generate",
        str(tiny_model),
        "--n",
        "5",
        "--source",
        "lhcb",
        "--out",
        str(tmp_path / "g.h5"),
        "--batch-size",
        "0",
    )
    assert code == 1 and "--batch-size: must be positive" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_cli_logs_progress_lines_when_not_on_a_terminal(cli, tmp_path, tiny_model):
    # capsys is not a terminal, as a batch job's log is not: plain lines replace the bar.
    out = tmp_path / "g.h5"
    args = ("generate", str(tiny_model), "--n", "40", "--source", "lhcb", "--out", str(out))
    code, _, stderr = cli(*args, "--batch-size", "16", "--seed", "1")
    assert code == 0 and len(ShowerFile(out)) == 40
    assert "generate: 40/40 showers" in stderr.splitlines()[-1]
