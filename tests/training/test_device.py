"""Training on a torch device other than the CPU (``caloforge train --device``).

The CUDA tests run only where torch sees a GPU (never in CI): every family trains a few steps
there, resumes there, and the model it writes generates on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloforge.errors import CaloforgeError
from caloforge.models import load_model
from caloforge.models.base import read_config
from caloforge.training.loop import TrainingSettings, train, training_device
from tests.conftest import FAMILY_DATA, TINY

FLOW = TINY["flow-matching"]
FAMILIES = {name: (FAMILY_DATA[name], TINY[name]) for name in FAMILY_DATA if name in TINY} | {
    "flow-matching-unet": ("lhcb", {"network": "unet", "channels": [4, 4, 4], "sample_steps": 2})
}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def _settings(steps: int, device: str = "cpu") -> TrainingSettings:
    return TrainingSettings(
        steps=steps, batch_size=16, checkpoint_every=2, eval_every=2, device=device
    )


def test_devices_this_machine_lacks_are_refused_in_one_line(data, tmp_path, cli):
    with pytest.raises(CaloforgeError, match="unknown device"):
        training_device("gpu0")
    with pytest.raises(CaloforgeError, match="cpu or cuda"):
        training_device("meta")
    lhcb = data("lhcb")
    wanted = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or cuda:0 on none
    code, _, err = cli(
        "train", "flow-matching", "--data", str(lhcb), "--out", str(tmp_path / "m"),
        "--steps", "2", "--device", wanted,
    )  # fmt: skip
    assert code != 0
    assert "GPU" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()  # refused before anything is written


def test_the_device_is_recorded_and_a_resume_may_change_it(data, tmp_path):
    lhcb = data("lhcb")
    out = tmp_path / "m"
    train("flow-matching", lhcb, out, settings=_settings(4), model_options=FLOW, max_time=0)
    assert read_config(out).training["settings"]["device"] == "cpu"  # stopped before a step
    train("flow-matching", lhcb, out, resume=True, device="cpu")
    with pytest.raises(CaloforgeError, match="GPU"):
        train("flow-matching", lhcb, out, resume=True, device="cuda:99")


def test_the_response_weight_changes_what_the_teacher_learns(data, tmp_path):
    lhcb = data("lhcb")
    weights = {}
    for w in (1, 300):
        out = tmp_path / f"w{w}"
        train(
            "flow-matching", lhcb, out, settings=_settings(3),
            model_options=FLOW | {"response_weight": w},
        )  # fmt: skip
        weights[w] = load_model(out).state_dict()
    assert any(not torch.equal(weights[1][k], weights[300][k]) for k in weights[1])


@cuda
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_on_cuda_and_generates_on_the_cpu(name, data, tmp_path):
    kind, options = FAMILIES[name]
    family = "flow-matching" if name.startswith("flow-matching") else name
    out = tmp_path / "m"
    train(family, data(kind), out, settings=_settings(2, "cuda"), model_options=options)
    train(family, data(kind), out, resume=True, steps=4)  # resumes on the recorded device
    model = load_model(out)
    assert model.config.training["settings"]["device"] == "cuda"
    conditions = _conditions(data(kind))
    showers = model.sample(conditions, torch.Generator().manual_seed(0))
    assert showers.shape[0] == len(conditions) and np.isfinite(showers).all()


@cuda
def test_a_student_distils_on_cuda(data, tmp_path):
    lhcb = data("lhcb")
    teacher = tmp_path / "t"
    train("flow-matching", lhcb, teacher, settings=_settings(2, "cuda"), model_options=FLOW)
    student = tmp_path / "s"
    options = {"teacher": str(teacher), "hidden": 16, "blocks": 1}
    train("flow-matching-student", lhcb, student, settings=_settings(3, "cuda"),
          model_options=options)  # fmt: skip
    assert np.isfinite(load_model(student).sample(_conditions(lhcb), torch.Generator())).all()


@cuda
def test_the_same_seed_repeats_a_cuda_run(data, tmp_path):
    lhcb = data("lhcb")
    runs = []
    for i in range(2):
        train("flow-matching", lhcb, tmp_path / str(i), settings=_settings(3, "cuda"),
              model_options=FLOW)  # fmt: skip
        runs.append(load_model(tmp_path / str(i)).state_dict())
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=1e-5, atol=1e-6)


def _conditions(path) -> np.ndarray:
    from caloforge.data.showerfile import ShowerFile

    return ShowerFile(path).read(0, 8).conditions
