import json
import time

import h5py
import numpy as np
import pytest
from safetensors.torch import load_file

from caloforge.errors import CaloforgeError
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY, option_args, write_lhcb_like

TINY_WGAN = TINY["wgan-gp-lhcb"]


def settings(**kw):
    base = dict(steps=6, batch_size=32, checkpoint_every=2, eval_every=3, log_every=1)
    return TrainingSettings(**(base | kw))


def test_model_directory_contract(tiny_model):
    for name in ("config.json", "model.safetensors", "metrics.json", "training_log.jsonl"):
        assert (tiny_model / name).exists()
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["family"] == "wgan-gp-lhcb"
    assert config["conditions"] == ["px", "py", "pz", "x", "y"]
    assert config["shower_transform"]["name"] == "chain"
    assert config["training"]["settings"]["steps"] == 6
    assert "lhcb" in config["training"]["data"]["source"]
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    for key in ("auc_cells_network", "fpd_x1e3", "kpd_x1e3", "separation_power", "w1"):
        assert key in metrics
    log = (tiny_model / "training_log.jsonl").read_text().splitlines()
    lines = [json.loads(line) for line in log]
    assert any("holdout_mean_separation_power" in line for line in lines)


def test_resume_after_interruption_gives_the_same_weights(tmp_path, lhcb_like):
    straight = tmp_path / "straight"
    train("wgan-gp-lhcb", lhcb_like, straight, settings=settings(), model_options=TINY_WGAN)

    cut = tmp_path / "cut"

    def interrupt(step, total, losses):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(CaloforgeError, match="interrupted at step 4"):
        train(
            "wgan-gp-lhcb",
            lhcb_like,
            cut,
            settings=settings(),
            model_options=TINY_WGAN,
            progress=interrupt,
        )
    result = train("wgan-gp-lhcb", lhcb_like, cut, resume=True)
    assert result.complete and result.step == 6
    a = load_file(straight / "model.safetensors")
    b = load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key

    def logged(path):  # the losses and scores; wall times differ from run to run
        records = [
            json.loads(line) for line in (path / "training_log.jsonl").read_text().splitlines()
        ]
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]

    assert logged(straight) == logged(cut)


def test_max_time_stops_with_a_checkpoint(tmp_path, lhcb_like):
    out = tmp_path / "m"
    result = train(
        "wgan-gp-lhcb", lhcb_like, out, settings=settings(), model_options=TINY_WGAN, max_time=0.0
    )
    assert not result.complete and (out / "checkpoints" / "last.safetensors").exists()


def test_a_run_stopped_by_max_time_is_a_model_of_its_best_weights_so_far(
    tmp_path, lhcb_like, monkeypatch
):
    import caloforge.training.loop as loop

    late = []  # the clock jumps past max_time once step 2 is done

    class Clock:
        @staticmethod
        def perf_counter():
            return time.perf_counter() + (1e9 if late else 0.0)

    monkeypatch.setattr(loop, "time", Clock)
    out = tmp_path / "m"
    run = settings(steps=6, eval_every=2, checkpoint_every=2)
    initial = {}

    def progress(step, total, losses):
        if step == 1:
            initial.update(load_file(out / "model.safetensors"))
        if step == 2:
            late.append(True)

    result = train(
        "wgan-gp-lhcb", lhcb_like, out, settings=run, model_options=TINY_WGAN, max_time=1e6,
        progress=progress,
    )  # fmt: skip
    assert not result.complete and result.step == 2
    kept = load_file(out / "model.safetensors")
    best = load_file(out / "checkpoints" / "best.safetensors")
    assert all(np.array_equal(kept[k], best[k]) for k in best)
    assert any(not np.array_equal(kept[k], initial[k]) for k in initial)  # not the initial
    assert json.loads((out / "metrics.json").read_text())["best_step"] == 2
    assert train("wgan-gp-lhcb", lhcb_like, out, resume=True).complete


def test_bad_requests(tmp_path, lhcb_like, tiny_model):
    with pytest.raises(CaloforgeError, match="unknown model family"):
        train("nope", lhcb_like, tmp_path / "x")
    with pytest.raises(CaloforgeError, match="exists"):
        train("wgan-gp-lhcb", lhcb_like, tiny_model)
    with pytest.raises(CaloforgeError, match="model option latent: input should be greater"):
        train("wgan-gp-lhcb", lhcb_like, tmp_path / "y", model_options={"latent": -1})
    with pytest.raises(CaloforgeError, match="no option 'latnt'; did you mean latent"):
        train("wgan-gp-lhcb", lhcb_like, tmp_path / "y", model_options={"latnt": 8})
    with pytest.raises(CaloforgeError, match=r"no checkpoint|no config|no model directory"):
        train("wgan-gp-lhcb", lhcb_like, tmp_path / "z", resume=True)


def test_a_finished_training_can_be_extended(tmp_path, lhcb_like):
    out = tmp_path / "m"
    train("wgan-gp-lhcb", lhcb_like, out, settings=settings(steps=3), model_options=TINY_WGAN)
    result = train("wgan-gp-lhcb", lhcb_like, out, resume=True, steps=5)
    assert result.complete and result.step == 5
    assert json.loads((out / "config.json").read_text())["training"]["settings"]["steps"] == 5


def test_cli_stops_on_max_time_and_resumes(tmp_path, lhcb_like, cli):
    out = tmp_path / "m"
    options = option_args(TINY_WGAN)
    args = ["train", "wgan-gp-lhcb", "--data", str(lhcb_like), "--out", str(out)]
    code, stdout, _ = cli(*args, "--steps", "4", "--batch-size", "32", "--max-time", "0", *options)
    assert code == 0 and "continue with --resume" in stdout
    code, stdout, _ = cli(*args, "--resume")
    assert code == 0 and "step 4/4 (done)" in stdout


def test_training_data_is_read_out_above_the_threshold(lhcb_like):
    from caloforge.data.showerfile import ShowerFile
    from caloforge.training.distributed import World
    from caloforge.training.loop import _Data

    raw = ShowerFile(lhcb_like).read().showers
    data = _Data(lhcb_like, settings(), World(), fit_all=True)
    threshold = data.detector.threshold
    assert ((raw > 0) & (raw < threshold)).any()  # the fixture has cells under it
    for showers in (data.showers, data.fit_all[0]):
        assert not ((showers > 0) & (showers < threshold)).any()


def test_files_too_small_or_calibrated_are_refused_before_training(tmp_path, lhcb_like):
    # 80 events leave 8 for the held-out evaluation that ends training: refused at once, with
    # no model directory written, not after the training.
    small = write_lhcb_like(tmp_path / "small.h5", 80, seed=3)
    settings = TrainingSettings(steps=2, batch_size=8)
    with pytest.raises(CaloforgeError, match=r"leave 8 .* needs 10; train on at least 100"):
        train("wgan-gp-lhcb", small, tmp_path / "m", settings=settings, model_options=TINY_WGAN)
    assert not (tmp_path / "m").exists()
    enough = write_lhcb_like(tmp_path / "enough.h5", 100, seed=3)
    result = train(
        "wgan-gp-lhcb", enough, tmp_path / "m", settings=settings, model_options=TINY_WGAN
    )
    assert result.complete
    with h5py.File(enough, "a") as h5:
        h5.attrs["energy_unit"] = "calibrated MeV"
    with pytest.raises(CaloforgeError, match="convert it"):
        train("wgan-gp-lhcb", enough, tmp_path / "m2", settings=settings, model_options=TINY_WGAN)
