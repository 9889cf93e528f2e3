"""The NYU families on the LCD ECAL: the seed's architectures, the locally-connected layer, the
stochastic LSTM's likelihood and draws, on tiny networks and lcd-ecal stand-in data."""

import copy
import math

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family, load_model
from caloforge.models.common import LocallyConnected2d
from caloforge.models.lstm_lcd import _draw, _log_likelihood
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS
from tests.conftest import option_args, write_lcd_like

TINY = {family: TINY_MODELS[family] for family in ("lstm-lcd", "wgan-mlp-lcd", "lagan-lcd")}


@pytest.fixture(scope="module")
def lcd_file(tmp_path_factory):
    return write_lcd_like(tmp_path_factory.mktemp("lcd") / "lcd.h5", 100, seed=1)


def config(family, **options):
    cls = get_family(family).config_class
    return cls(
        detector=load_detector("lcd-ecal").to_yaml(), conditions=("particle", "energy"), **options
    )


def fitted(family, path, **options):
    data = ShowerFile(path).read()
    cls = get_family(family)
    cfg = config(family, **(TINY[family] | options))
    model = cls.create(cfg, data.showers, data.incident_energies[:, 0], data.conditions)
    return model.eval(), data


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_seed_architectures_have_the_seeds_sizes():
    mlp = get_family("wgan-mlp-lcd")(config("wgan-mlp-lcd"))
    # Seed 003: 2 010 800 generator parameters (the 200 -> 400 x 25 layer and two 200-wide
    # embeddings), 2 560 865 critic parameters; the one-hot particle adds a bias and an input.
    assert n_params(mlp.generator) == 200 * 10_000 + 10_000
    assert n_params(mlp.generator, mlp.merge) == 2_010_800 + 200
    assert n_params(mlp.critic) == 2_560_865 + 8
    lagan = get_family("lagan-lcd")(config("lagan-lcd"))
    assert lagan.image_shape == (25, 25)
    assert abs(n_params(lagan.generator, lagan.merge) / 858_429 - 1) < 0.1
    assert abs(n_params(lagan.critic) / 855_067 - 1) < 0.1
    lstm = get_family("lstm-lcd")(config("lstm-lcd"))
    assert lstm.lstm.input_size == 430 and lstm.lstm.hidden_size == 800  # 400 + 3 x 10
    assert lstm.config.output == "mixture"
    with pytest.raises(CaloforgeError, match="conditioned on particle, energy"):
        get_family("lstm-lcd")(config("lstm-lcd").model_copy(update={"conditions": ("energy",)}))


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 0), (1, 2), (2, 1)])
def test_locally_connected_layer_matches_a_direct_loop(stride, padding):
    torch.manual_seed(0)
    layer = LocallyConnected2d(3, 2, (7, 6), 3, stride=stride, padding=padding)
    x = torch.randn(4, 3, 7, 6)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    oh, ow = layer.output_size
    expected = torch.zeros(4, 2, oh, ow)
    for i in range(oh):
        for j in range(ow):
            weight = layer.weight[i * ow + j]  # (kernel row, kernel column, channel) x out
            for ki in range(3):
                for kj in range(3):
                    for c in range(3):
                        pixel = padded[:, c, i * stride + ki, j * stride + kj]
                        expected[:, :, i, j] += pixel[:, None] * weight[(ki * 3 + kj) * 3 + c]
    expected += layer.bias
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    # a filter per position: moving the input moves nothing along with it
    conv_like = layer(torch.roll(x, 1, dims=3))[..., 1:]
    assert not torch.allclose(conv_like, layer(x)[..., :-1], atol=1e-3)


@pytest.mark.parametrize("family", sorted(TINY))
def test_decode_is_deterministic_and_fills_only_the_kept_cells(family, lcd_file):
    model, data = fitted(family, lcd_file)
    assert model.config.particles == (22, 111)
    c = torch.as_tensor(data.conditions[:5], dtype=torch.float32)
    noise = model.noise(5, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = model.decode(noise, c), model.decode(noise, c)
    assert a.shape == (5, 15_625) and torch.equal(a, b)
    assert ((a == 0) | (a >= model.detector.threshold)).all()
    kept = np.zeros(15_625, bool)
    kept[model.shower_transform.steps[0]._gather] = True
    assert (a[:, ~kept] == 0).all()


@pytest.mark.parametrize(
    ("family", "output"),
    [
        ("lstm-lcd", "mixture"),
        ("lstm-lcd", "slice-energy"),
        ("wgan-mlp-lcd", None),
        ("lagan-lcd", None),
    ],
)
def test_train_step_moves_the_networks(family, output, lcd_file):
    model, data = fitted(family, lcd_file, **({"output": output} if output else {}))
    batch = model.to_training(
        data.showers[:16], data.incident_energies[:16, 0], data.conditions[:16]
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logs = model.train_step(
        [batch] * model.batches_per_step, model.optimizers(), torch.Generator().manual_seed(0), 0
    )
    changed = {
        k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(before[k], v)
    }
    assert all(math.isfinite(v) for v in logs.values())
    if output == "slice-energy":
        assert {"lstm", "head", "slice_head", "particle", "energy", "h0"} <= changed
        assert set(logs) == {"nll", "slice_nll"}
    elif output == "mixture":
        assert {"lstm", "head", "particle", "energy", "h0"} <= changed and set(logs) == {"nll"}
    else:
        assert {"generator", "critic", "merge"} <= changed
        clip = model.config.clip
        assert all(p.abs().max() <= clip for p in model.critic.parameters())


@pytest.mark.parametrize("family", ["wgan-mlp-lcd", "lagan-lcd"])
def test_a_critic_in_chunks_takes_the_step_of_the_whole_batch(family, lcd_file):
    whole, data = fitted(family, lcd_file, chunk=None)
    chunked = copy.deepcopy(whole)
    chunked.config = chunked.config.model_copy(update={"chunk": 5})  # 16 = 5 + 5 + 5 + 1
    start = copy.deepcopy(whole.state_dict())
    batches = [
        whole.to_training(
            data.showers[i : i + 16],
            data.incident_energies[i : i + 16, 0],
            data.conditions[i : i + 16],
        )
        for i in range(0, 16 * whole.batches_per_step, 16)
    ]
    logs = []
    for model in (whole, chunked):
        sgd = {  # plain steps: the weights move by the gradients themselves
            "generator": torch.optim.SGD(
                [*model.generator.parameters(), *model.merge.parameters()]
            ),
            "critic": torch.optim.SGD(model.critic.parameters()),
        }
        for o in sgd.values():
            o.param_groups[0]["lr"] = 1e-3
        logs.append(model.train_step(batches, sgd, torch.Generator().manual_seed(0), 0))
    assert any(not torch.equal(v, start[k]) for k, v in whole.state_dict().items())
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(chunked.state_dict()[key], value, rtol=1e-4, atol=1e-6)
    assert logs[1] == pytest.approx(logs[0], rel=1e-4, abs=1e-6)


def test_lstm_draws_no_pixel_above_the_largest_in_training(lcd_file):
    model, data = fitted("lstm-lcd", lcd_file)
    with torch.no_grad():  # a head whose every component is far out in the log
        model.head.bias[0::7] = -20.0  # per pixel: the logit of empty, 2 weights, 2 means, 2 σ
        model.head.bias[3::7] = model.head.bias[4::7] = 50.0
    c = torch.as_tensor(data.conditions[:3], dtype=torch.float32)
    with torch.inference_mode():
        showers = model.decode(model.noise(3, torch.Generator().manual_seed(0)), c)
    assert float(showers.max()) == pytest.approx(float(data.showers.max()), rel=1e-5)


def test_lstm_slices_hold_the_drawn_slice_energy(lcd_file):
    model, data = fitted("lstm-lcd", lcd_file, output="slice-energy")
    image = model.shower_transform.steps[0].forward(data.showers).reshape(100, 25, 20)
    assert model.config.slice_upper == pytest.approx(image.sum(axis=2).max())
    assert model.latent_dim == 2 * 25 * 20 + 2 * 25
    layers, keep = model.image_shape
    c = model.condition_transform.forward(torch.as_tensor(data.conditions[:4]).float())
    noise = model.noise(4, torch.Generator().manual_seed(0))
    s = math.log1p(40.0 / model.shower_transform.steps[1].scale)
    with torch.no_grad():  # every slice: never empty, 40 MeV (σ 0.1 %), all its pixels filled
        model.head.weight.zero_()  # all pixels alike, then scaled to the slice's energy
        model.head.bias[:] = torch.tensor([-20.0, 0, 0, 1, 1, -20, -20]).repeat(keep)
        model.slice_head.weight.zero_()
        model.slice_head.bias[:] = torch.tensor([-20.0, 0, 0, s, s, -20, -20])
        y = model.generate_transformed(noise, c).reshape(4, layers, keep)
        energy = model.shower_transform.steps[1].inverse(y).sum(-1)
        np.testing.assert_allclose(energy.numpy(), 40.0, rtol=1e-2)
        model.slice_head.bias[3:5] = 50.0  # far beyond the largest slice in training
        y = model.generate_transformed(noise, c).reshape(4, layers, keep)
        energy = model.shower_transform.steps[1].inverse(y).sum(-1)
    np.testing.assert_allclose(energy.numpy(), model.config.slice_upper, rtol=1e-3)


def test_lstm_l2_is_the_seeds_deterministic_version(lcd_file):
    model, data = fitted("lstm-lcd", lcd_file, output="l2")
    assert model.latent_dim == 0 and model.head.out_features == 20
    c = torch.as_tensor(data.conditions[:1].repeat(3, axis=0), dtype=torch.float32)
    with torch.inference_mode():
        showers = model.decode(model.noise(3, torch.Generator()), c)
    assert torch.equal(showers[0], showers[1])  # the same conditions, the same "mean" event


def test_mixture_likelihood_is_normalised_and_draws_follow_it():
    # one pixel: P(empty) = 0.3, then 0.25 N(3, 0.5) + 0.75 N(6, 1)
    params = torch.tensor([math.log(0.3 / 0.7), math.log(0.25), math.log(0.75), 3.0, 6.0, 0, 0])
    softplus_inv = lambda s: math.log(math.expm1(s - 1e-3))  # noqa: E731
    params[5], params[6] = softplus_inv(0.5), softplus_inv(1.0)
    y = torch.linspace(1e-4, 14, 20_001)
    density = _log_likelihood(params.expand(len(y), -1), y).exp()
    mass = torch.trapezoid(density, y) + _log_likelihood(params[None], torch.zeros(1)).exp()
    assert abs(mass.item() - 1) < 1e-3
    g = torch.Generator().manual_seed(0)
    n = 200_000
    draws = _draw(params.expand(n, -1), torch.randn(n, generator=g), torch.randn(n, generator=g))
    filled = draws[draws > 0]
    assert abs((draws == 0).double().mean().item() - 0.3) < 0.005
    assert abs(filled.mean().item() - (0.25 * 3 + 0.75 * 6)) < 0.02

    def cdf(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    below = 0.25 * cdf((4.5 - 3) / 0.5) + 0.75 * cdf((4.5 - 6) / 1.0)
    assert abs(((filled < 4.5).double().mean()).item() - below) < 0.005


@pytest.mark.parametrize("family", sorted(TINY))
def test_train_generate_reload(family, lcd_file, tmp_path):
    settings = TrainingSettings(steps=2, batch_size=16, checkpoint_every=2, eval_every=2)
    train(family, lcd_file, tmp_path / "m", settings=settings, model_options=TINY[family])
    model = load_model(tmp_path / "m")
    showers = model.sample(ShowerFile(lcd_file).read(0, 4).conditions, torch.Generator())
    assert showers.shape == (4, 15_625) and np.isfinite(showers).all()


def test_bad_input_is_one_line(cli, lcd_file, tmp_path):
    base = ["train", "--data", str(lcd_file), "--steps", "1", "--batch-size", "16"]
    code, _, err = cli(*base, "lagan-lcd", "--out", str(tmp_path / "a"), "-o", "crop=30")
    assert code != 0 and "spiral crop 30 does not fit a 25 x 25 layer" in err
    code, _, err = cli(*base, "lstm-lcd", "--out", str(tmp_path / "b"), "-o", "slices=30")
    assert code != 0 and "asked for 30 slices of a detector of 25 layers" in err
    assert "Traceback" not in err
    options = option_args(TINY["lstm-lcd"])
    assert cli(*base, "lstm-lcd", "--out", str(tmp_path / "m"), *options)[0] == 0
    electrons = tmp_path / "electrons.yaml"
    electrons.write_text(
        "name: electrons\nparticles: [e-]\nenergy: {kind: fixed, value: 20000}\n"
        "conditions: [particle, energy]\n"
    )
    out = tmp_path / "gen.h5"
    gen = ["generate", str(tmp_path / "m"), "--n", "4", "--out", str(out)]
    code, _, err = cli(*gen, "--source", str(electrons))
    assert code != 0 and "trained on particles 22, 111 (PDG), not 11" in err
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    assert cli(*gen, "--source", "nyu")[0] == 0 and len(ShowerFile(out)) == 4
