import numpy as np
import pytest
import torch

from caloforge.data.transforms import (
    BoxCox,
    Chain,
    Directions,
    EnergyFraction,
    Identity,
    Log,
    Log1p,
    LogColumns,
    LogitFraction,
    LogShares,
    OneHot,
    Power,
    SpiralUnroll,
    Standardize,
    transform_from_state,
)
from caloforge.errors import CaloforgeError


def showers(rng, n=500, cells=8):
    x = rng.lognormal(0, 2, (n, cells))
    x[rng.uniform(size=x.shape) < 0.4] = 0  # sparse, as calorimeter showers are
    return x


def energies(rng, n=500):
    return rng.uniform(1e3, 1e5, (n, 1))


CASES = {
    "identity": lambda: Identity(),
    "log": lambda: Log(eps=1e-3),
    "log1p": lambda: Log1p(scale=0.5),
    "power": lambda: Power(0.85),
    "boxcox": lambda: BoxCox(shift=1e-3),
    "standardize": lambda: Standardize(),
    "standardize_global": lambda: Standardize(per_feature=False),
    "logit_fraction": lambda: LogitFraction(alpha=1e-6),
    "energy_fraction": lambda: EnergyFraction(),
    "chain": lambda: Chain([BoxCox(shift=1e-2), Standardize()]),
    "fraction_chain": lambda: Chain([EnergyFraction(), BoxCox(shift=1e-6), Standardize()]),
    "log_shares": lambda: LogShares(alpha=1e-7),
    "shares_chain": lambda: Chain([LogShares(), Standardize()]),
    "log_shares_above": lambda: LogShares(threshold=0.05),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_recovers_input_numpy_and_torch(name, rng):
    x, e = showers(rng), energies(rng)
    x[:, 0] += 1.0
    x = x / x.sum(axis=1, keepdims=True) * e * 0.2  # deposits are a fraction of E_inc
    t = CASES[name]().fit(x, e)
    y = t.forward(x, e)
    assert np.isfinite(y).all()
    assert np.allclose(t.inverse(y, e), x, rtol=1e-6, atol=1e-6)
    yt = t.forward(torch.from_numpy(x), torch.from_numpy(e))
    assert torch.allclose(yt, torch.from_numpy(y))
    assert np.allclose(t.inverse(yt, torch.from_numpy(e)).numpy(), x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_roundtrip_through_json(name, rng):
    import json

    x, e = showers(rng), energies(rng)
    t = CASES[name]().fit(x, e)
    again = transform_from_state(json.loads(json.dumps(t.state())))
    assert np.array_equal(again.forward(x, e), t.forward(x, e))


def test_boxcox_fits_lambda_that_gaussianises(rng):
    x = rng.lognormal(1.0, 0.5, 20_000)
    t = BoxCox(shift=0.0).fit(x[:, None])
    assert abs(t.lam) < 0.05  # a log-normal needs the log: λ ≈ 0


def test_standardize_gives_zero_mean_unit_std(rng):
    x = rng.normal(5, 3, (1000, 3))
    y = Standardize().fit(x).forward(x)
    assert np.allclose(y.mean(0), 0, atol=1e-12) and np.allclose(y.std(0), 1)


def test_standardize_without_centring_keeps_zero(rng):
    x = np.where(rng.uniform(size=(1000, 4)) < 0.5, 0.0, rng.exponential(2.0, (1000, 4)))
    t = Standardize(per_feature=False, center=False).fit(x)
    y = t.forward(x)
    assert t.mean == 0 and ((y == 0) == (x == 0)).all()
    assert np.mean(y**2) == pytest.approx(1) and np.allclose(t.inverse(y), x)
    assert transform_from_state(t.state()).center is False


def test_unfitted_use_is_an_error():
    with pytest.raises(CaloforgeError):
        Standardize().forward(np.ones((2, 2)))
    with pytest.raises(CaloforgeError):
        transform_from_state({"name": "nope"})


@pytest.mark.parametrize("lam", [-0.3, 0.0, 0.3])
def test_boxcox_inverse_is_finite_beyond_the_transform_range(rng, lam):
    x = rng.exponential(10.0, (1000, 1))
    t = BoxCox(shift=0.01).fit(x)
    t.lam = lam
    y = np.array([[-1e3], [0.0], [1e3], [1e6]])
    back = t.inverse(y)
    assert np.isfinite(back).all() and back.min() >= 0
    assert back.max() <= BoxCox.SATURATION * x.max() * (1 + 1e-9)
    assert np.allclose(t.inverse(t.forward(x)), x)


def test_log_columns_roundtrip_numpy_torch_and_state(rng):
    x = np.column_stack([rng.uniform(1e3, 1e5, 50), rng.normal(0, 100, 50)])  # energy, angle
    t = LogColumns([0])
    y = t.forward(x)
    assert np.allclose(y[:, 0], np.log(x[:, 0])) and np.array_equal(y[:, 1], x[:, 1])
    assert np.allclose(t.inverse(y), x)
    yt = t.forward(torch.as_tensor(x, dtype=torch.float32))
    assert torch.allclose(t.inverse(yt).double(), torch.as_tensor(x), rtol=1e-5)
    assert np.allclose(transform_from_state(t.state()).forward(x), y)


def test_log_shares_holds_the_response_in_one_coordinate(rng):
    x, e = showers(rng), energies(rng)
    x[:, 0] += 1.0
    y = LogShares().forward(x, e)
    assert y.shape == (len(x), x.shape[1] + 1)
    np.testing.assert_allclose(np.exp(y[:, 0]), x.sum(axis=1) / e[:, 0])
    doubled = y.copy()
    doubled[:, 0] += np.log(2.0)  # twice the response: every cell twice, the shape unchanged
    np.testing.assert_allclose(LogShares().inverse(doubled, e), 2 * x, rtol=1e-9, atol=1e-9)


def test_log_shares_above_a_threshold_keep_the_read_out_total(rng):
    x, e = showers(rng), energies(rng)
    x[:, 0] += 1.0
    threshold = 0.05
    x = np.where(x < threshold, rng.uniform(0, 0.3 * threshold, x.shape), x)  # dequantised
    t = LogShares(threshold=threshold)
    y = t.forward(x, e)
    above = np.where(x >= threshold, x, 0).sum(axis=1)
    np.testing.assert_allclose(np.exp(y[:, 0]), above / e[:, 0])
    # A model's shares that are off (noise on every cell's log share): whatever falls below the
    # threshold is read out as 0, and what remains sums to the drawn total, exceeded by at most
    # a threshold for each cell read out (the ones lifted back to it).
    noisy = y + np.concatenate([np.zeros((len(y), 1)), rng.normal(0, 0.3, x.shape)], axis=1)
    for back in (t.inverse(noisy, e), t.inverse(torch.from_numpy(noisy), torch.from_numpy(e))):
        back = np.asarray(back)
        read = np.where(back >= threshold, back, 0).sum(axis=1)
        assert (read >= above * (1 - 1e-9)).all()
        assert (read - above <= threshold * (back >= threshold).sum(axis=1)).all()
        assert np.median(read / above - 1) < 1e-9
    plain = LogShares().inverse(LogShares().forward(x, e) + noisy - y, e)
    assert np.abs(np.where(plain >= threshold, plain, 0).sum(axis=1) / above - 1).max() > 1e-3


def test_directions_are_log_momentum_and_slopes_and_invert(rng):
    p = np.column_stack([rng.normal(0, 100, 50), rng.normal(0, 100, 50), rng.uniform(1e3, 1e4, 50)])
    c = np.column_stack([rng.uniform(-5, 5, 50), p])  # (x, px, py, pz)
    t = Directions([1, 2, 3])
    y = t.forward(c)
    np.testing.assert_allclose(y[:, 0], c[:, 0])
    np.testing.assert_allclose(y[:, 1], np.log(np.linalg.norm(p, axis=1)))
    np.testing.assert_allclose(y[:, 2:], p[:, :2] / p[:, 2:])
    np.testing.assert_allclose(t.inverse(y), c)
    np.testing.assert_allclose(t.inverse(t.forward(torch.from_numpy(c))).numpy(), c)
    with pytest.raises(CaloforgeError, match="px, py, pz"):
        Directions([0, 1])


def test_spiral_unroll_reads_rings_outward_and_inverts(rng):
    t = SpiralUnroll(shape=[3, 25, 25], crop=20, keep=100)
    spiral = t.spiral()
    ring = np.abs(spiral - 12).max(axis=1)
    assert len(spiral) == 100 and len(np.unique(spiral, axis=0)) == 100
    assert (ring[0], np.diff(ring).min()) == (0, 0)  # the centre first, never inwards
    assert (ring[:81] <= 4).all() and (ring[81:] == 5).all()  # 9 x 9 rings, then part of one
    full = SpiralUnroll(shape=[3, 25, 25], crop=20).spiral()
    assert full[:, 0].min() == 2 and full[:, 0].max() == 21  # the 20 x 20 window
    cubes = rng.exponential(1.0, (4, 3 * 625))
    unrolled = t.forward(cubes)
    assert unrolled.shape == (4, 3 * 100) and t.image_shape == (3, 100)
    # layer 1's fourth spiral position is cell (row, column) of that layer
    r, c = spiral[3]
    assert unrolled[2, 100 + 3] == cubes[2, 625 + r * 25 + c]
    back = t.inverse(unrolled)
    kept = back != 0
    assert kept.sum(axis=1).tolist() == [300] * 4
    np.testing.assert_array_equal(back[kept], cubes[kept])
    np.testing.assert_array_equal(t.inverse(t.forward(back)), back)  # exact where nothing is cut
    as_torch = t.inverse(t.forward(torch.from_numpy(back)))
    np.testing.assert_array_equal(as_torch.numpy(), back)
    again = transform_from_state(t.state())
    assert again.params() == {"shape": [3, 25, 25], "crop": 20, "keep": 100, "slices": 3}
    first = SpiralUnroll(shape=[3, 25, 25], crop=20, keep=100, slices=2)
    assert first.image_shape == (2, 100)
    np.testing.assert_array_equal(first.forward(cubes), unrolled[:, :200])
    assert (first.inverse(first.forward(cubes))[:, 2 * 625 :] == 0).all()
    with pytest.raises(CaloforgeError, match="asked for 4 slices of a detector of 3 layers"):
        SpiralUnroll(shape=[3, 25, 25], crop=20, slices=4)
    with pytest.raises(CaloforgeError, match="does not fit"):
        SpiralUnroll(shape=[3, 25, 25], crop=30)
    with pytest.raises(CaloforgeError, match="cannot keep 26"):
        SpiralUnroll(shape=[3, 25, 25], crop=5, keep=26)


def test_one_hot_codes_a_particle_and_inverts():
    t = OneHot(column=1, categories=[22, 111])
    x = np.array([[5.0, 22.0, 7.0], [6.0, 111.0, 8.0], [1.0, 11.0, 2.0]])
    y = t.forward(x)
    np.testing.assert_array_equal(y, [[5, 7, 1, 0], [6, 8, 0, 1], [1, 2, 0, 0]])
    np.testing.assert_array_equal(t.inverse(y)[:2], x[:2])
    assert t.inverse(y)[2, 1] == 0  # an unknown code has no category
    yt = t.forward(torch.from_numpy(x).float())
    np.testing.assert_array_equal(yt.numpy(), y)
    assert transform_from_state(t.state()).params() == t.params()


def test_log1p_saturates_at_the_largest_value_it_was_fitted_on(rng):
    x = showers(rng)
    t = Log1p(scale=0.5).fit(x)
    assert t.upper == x.max() and t.y_max == np.log1p(x.max() / 0.5)
    far = np.array([[t.y_max + 30.0, 1.0]])
    np.testing.assert_allclose(t.inverse(far)[0, 0], x.max())
    assert float(t.inverse(torch.tensor(far))[0, 0]) == pytest.approx(x.max())
    assert Log1p(scale=0.5).inverse(far)[0, 0] > 1e10  # unfitted: no bound


# Property-based: the round trips above for any batch, including empty cells, huge and tiny
# deposits and a single event or cell.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

_DEPOSITS = st.one_of(st.just(0.0), st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def _batches(draw):
    n = draw(st.integers(2, 40))
    cells = draw(st.integers(1, 10))
    x = draw(arrays(np.float64, (n, cells), elements=_DEPOSITS))
    x[:, 0] += draw(st.floats(1e-3, 1e3))  # every shower deposits something
    e = x.sum(axis=1, keepdims=True) * draw(st.floats(1.5, 100.0))  # deposits < E_inc
    return x, e


@pytest.mark.parametrize("name", sorted(CASES))
@settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(batch=_batches())
def test_any_batch_round_trips_in_numpy_and_torch(name, batch):
    x, e = batch
    t = CASES[name]().fit(x, e)
    y = t.forward(x, e)
    assert y.shape[0] == x.shape[0] and y.dtype == np.float64 and np.isfinite(y).all()
    back = t.inverse(y, e)
    assert back.shape == x.shape
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-6 * e.max())
    yt = t.forward(torch.from_numpy(x), torch.from_numpy(e))
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-6, atol=1e-6)
