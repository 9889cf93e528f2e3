import h5py
import numpy as np
import pytest

from caloforge.data.showerfile import (
    CaloforgeWarning,
    ShowerBatch,
    ShowerFile,
    ShowerWriter,
    partial_path,
)
from caloforge.errors import CaloforgeError


def batch(rng, n, cells=6, k=2):
    return ShowerBatch(
        rng.exponential(1.0, (n, cells)).astype(np.float32),
        rng.uniform(1e3, 1e5, n),
        rng.normal(size=(n, k)),
        {"energy_active": rng.uniform(size=n)},
    )


def write(path, batches, planned=None, **kw):
    with ShowerWriter.create(
        path,
        n_cells=batches[0].showers.shape[1],
        condition_names=("a", "b"),
        extra_names=("energy_active",),
        n_planned=planned,
        attrs={"seed": 3},
        **kw,
    ) as w:
        for b in batches:
            w.append(b)
    return path


def test_roundtrip_slices_and_batches(tmp_path, rng):
    parts = [batch(rng, 5), batch(rng, 7)]
    path = write(tmp_path / "s.h5", parts)
    f = ShowerFile(path)
    assert len(f) == 12 and f.n_cells == 6 and f.complete
    assert f.condition_names == ("a", "b") and f.seed == 3
    whole = f.read()
    assert np.array_equal(whole.showers[:5], parts[0].showers)
    assert np.array_equal(whole.conditions[5:], parts[1].conditions)
    assert np.array_equal(whole.extras["energy_active"][5:], parts[1].extras["energy_active"])
    assert f.read(3, 9).showers.shape == (6, 6)
    sizes = [len(b) for b in f.iter_batches(5)]
    assert sizes == [5, 5, 2]


def test_file_is_calochallenge_compatible(tmp_path, rng):
    path = write(tmp_path / "s.h5", [batch(rng, 4)])
    with h5py.File(path) as h5:
        assert h5["incident_energies"].shape == (4, 1)
        assert h5["showers"].shape == (4, 6)
        assert h5["showers"].compression == "gzip"
        assert h5["conditions"].attrs["names"] == "a,b"


def test_partial_until_complete_and_resume(tmp_path, rng):
    path = tmp_path / "s.h5"
    first = batch(rng, 4)
    w = ShowerWriter.create(
        path, n_cells=6, condition_names=("a", "b"), extra_names=("energy_active",), n_planned=8
    )
    w.append(first)
    w.close()  # interrupted: not all planned events are in
    assert not path.exists() and partial_path(path).exists()
    f = ShowerFile(partial_path(path))
    assert len(f) == 4 and not f.complete
    second = batch(rng, 4)
    with ShowerWriter.resume(path) as w:
        assert w.n_committed == 4
        w.append(second)
    f = ShowerFile(path)
    assert f.complete and len(f) == 8
    assert np.array_equal(f.read(4).showers, second.showers)


def test_uncommitted_rows_are_invisible_and_dropped_on_resume(tmp_path, rng):
    path = tmp_path / "s.h5"
    w = ShowerWriter.create(
        path, n_cells=6, condition_names=("a", "b"), extra_names=("energy_active",), n_planned=10
    )
    w.append(batch(rng, 3))
    w.close()
    # Simulate a crash in the middle of an append: rows written, count not raised.
    with h5py.File(partial_path(path), "r+") as h5:
        for name in ("showers", "incident_energies", "conditions", "extra/energy_active"):
            h5[name].resize(5, axis=0)
    assert len(ShowerFile(partial_path(path))) == 3
    with ShowerWriter.resume(path) as w:
        assert w.n_committed == 3
        w.append(batch(rng, 7))
    assert len(ShowerFile(path)) == 10


def test_existing_output_is_refused(tmp_path, rng):
    path = write(tmp_path / "s.h5", [batch(rng, 2)])
    with pytest.raises(CaloforgeError, match="exists; use --overwrite"):
        write(path, [batch(rng, 2)])
    write(path, [batch(rng, 3)], overwrite=True)
    assert len(ShowerFile(path)) == 3


def test_corrupted_partial_cannot_resume(tmp_path):
    partial_path(tmp_path / "s.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(CaloforgeError, match="corrupted"):
        ShowerWriter.resume(tmp_path / "s.h5")


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(CaloforgeError, match="no such file"):
        ShowerFile(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(CaloforgeError, match="not an HDF5 file"):
        ShowerFile(tmp_path / "text.h5")
    with h5py.File(tmp_path / "nokey.h5", "w") as h5:
        h5["showers"] = np.zeros((3, 4))
    with pytest.raises(CaloforgeError, match="no 'incident_energies'"):
        ShowerFile(tmp_path / "nokey.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as h5:
        h5["showers"] = np.zeros((3, 4, 2))
        h5["incident_energies"] = np.ones((3, 1))
    with pytest.raises(CaloforgeError, match="must be 2-D"):
        ShowerFile(tmp_path / "shape.h5")
    with h5py.File(tmp_path / "len.h5", "w") as h5:
        h5["showers"] = np.zeros((3, 4))
        h5["incident_energies"] = np.ones((2, 1))
    with pytest.raises(CaloforgeError, match="disagree"):
        ShowerFile(tmp_path / "len.h5")


def test_unreadable_file(tmp_path, rng):
    import os

    path = write(tmp_path / "s.h5", [batch(rng, 2)])
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read any file")
        with pytest.raises(CaloforgeError, match="permission denied"):
            ShowerFile(path)
    finally:
        path.chmod(0o644)


def test_nan_is_refused_and_negative_clipped(tmp_path):
    with h5py.File(tmp_path / "cc.h5", "w") as h5:
        showers = np.ones((4, 3))
        showers[2, 1] = np.nan
        h5["showers"] = showers
        h5["incident_energies"] = np.ones((4, 1))
    f = ShowerFile(tmp_path / "cc.h5")
    with pytest.raises(CaloforgeError, match="NaN or infinite energies \\(first in event 2\\)"):
        f.read()
    with h5py.File(tmp_path / "neg.h5", "w") as h5:
        h5["showers"] = np.array([[1.0, -0.5], [2.0, 3.0]])
        h5["incident_energies"] = np.ones((2, 1))
    with pytest.warns(CaloforgeWarning, match="clipped 1 negative"):
        data = ShowerFile(tmp_path / "neg.h5").read()
    assert data.showers.min() == 0


def test_plain_calochallenge_file_reads_with_energy_condition(tmp_path):
    with h5py.File(tmp_path / "cc.h5", "w") as h5:
        h5["showers"] = np.ones((5, 3))
        h5["incident_energies"] = np.arange(1, 6, dtype=float)[:, None] * 1000
    f = ShowerFile(tmp_path / "cc.h5")
    assert f.condition_names == ("energy",) and f.detector is None and f.complete
    assert np.array_equal(f.read().conditions[:, 0], np.arange(1, 6) * 1000.0)


def test_writer_refuses_nan_and_wrong_width(tmp_path, rng):
    w = ShowerWriter.create(
        tmp_path / "s.h5", n_cells=6, condition_names=("a", "b"), extra_names=("energy_active",)
    )
    bad = batch(rng, 2)
    bad.showers[0, 0] = np.inf
    with pytest.raises(CaloforgeError, match="NaN or infinite"):
        w.append(bad)
    with pytest.raises(CaloforgeError, match="cells"):
        w.append(batch(rng, 2, cells=5))
    w.close()


def test_info_command(tmp_path, rng, cli):
    path = write(tmp_path / "s.h5", [batch(rng, 4)])
    code, stdout, _ = cli("info", str(path))
    assert code == 0 and "4 events x 6 cells, complete" in stdout
    code, _, stderr = cli("info", str(tmp_path / "missing.h5"))
    assert code == 1 and stderr.strip() == f"error: no such file: {tmp_path / 'missing.h5'}"


def test_select_leaves_out_condition_values(tmp_path, rng, cli):
    energies = np.tile([1024.0, 8192.0, 65536.0, 262144.0], 5)
    b = batch(rng, 20)
    b.conditions[:, 0] = energies
    path = write(tmp_path / "s.h5", [b])
    out = tmp_path / "seven.h5"
    code, stdout, _ = cli("select", str(path), "--out", str(out), "--leave-out", "a=8192,65536")
    assert code == 0 and "10 of 20 events" in stdout
    kept = ShowerFile(out)
    assert kept.complete and kept.attrs["selection"] == "a not in 8192, 65536"
    assert kept.attrs["seed"] == 3 and kept.extra_names == ("energy_active",)
    got, expected = kept.read(), np.isin(energies, [1024.0, 262144.0])
    np.testing.assert_array_equal(got.showers, b.showers[expected])
    np.testing.assert_array_equal(got.conditions, b.conditions[expected])
    np.testing.assert_array_equal(got.extras["energy_active"], b.extras["energy_active"][expected])
    # Repeated, the option adds up; a copy of a copy keeps both records.
    again = tmp_path / "again.h5"
    code, stdout, _ = cli(
        "select", str(out), "--out", str(again), "--leave-out", "a=1024", "--leave-out", "a=262144"
    )
    assert code == 1  # nothing is left
    code, stdout, _ = cli(
        "select", str(out), "--out", str(again), "--leave-out", "a=1024", "--n", "4"
    )
    assert code == 0 and "2 of 10 events" in stdout
    assert ShowerFile(again).attrs["selection"] == "a not in 8192, 65536; a not in 1024"
    code, _, stderr = cli("select", str(out), "--out", str(out), "--overwrite")
    assert code == 1 and "is the input file" in stderr and ShowerFile(out).complete
    # Mistakes are one line, found before anything is written.
    for leave_out, message in [
        ("a=8000", "no event of"),
        ("a=8192 --n 1", "no event of the first 1 events of"),
        ("c=1", "has no condition 'c' (it has a, b)"),
        ("a=lots", "--leave-out must look like CONDITION=V1,V2"),
        ("a=1024,8192,65536,262144", "leaves no event of"),
    ]:
        bad = tmp_path / "bad.h5"
        option, *more = leave_out.split()
        code, _, stderr = cli("select", str(path), "--out", str(bad), "--leave-out", option, *more)
        assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1
        assert not bad.exists() and not partial_path(bad).exists()


# Property-based: whatever batches are written, the file reads back exactly what was committed.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@st.composite
def _runs(draw):
    cells = draw(st.integers(1, 12))
    conditions = draw(st.integers(1, 4))
    values = st.one_of(st.just(0.0), st.floats(2.0**-100, 2.0**100, width=32))
    sizes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=4))
    return (
        cells,
        conditions,
        [
            (
                draw(arrays(np.float32, (n, cells), elements=values)),
                draw(arrays(np.float64, (n,), elements=st.floats(1.0, 1e7))),
                draw(arrays(np.float64, (n, conditions), elements=st.floats(-1e6, 1e6))),
            )
            for n in sizes
        ],
    )


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(run=_runs())
def test_any_batches_read_back_exactly(tmp_path_factory, run):
    cells, conditions, batches = run
    path = tmp_path_factory.mktemp("prop") / "s.h5"
    names = tuple(f"c{i}" for i in range(conditions))
    with ShowerWriter.create(path, n_cells=cells, condition_names=names) as w:
        for showers, energy, cond in batches:
            w.append(ShowerBatch(showers, energy, cond))
    f = ShowerFile(path)
    data = f.read()
    assert len(f) == sum(len(b[0]) for b in batches) and f.n_cells == cells
    assert f.condition_names == names
    np.testing.assert_array_equal(data.showers, np.concatenate([b[0] for b in batches]))
    np.testing.assert_array_equal(
        data.incident_energies[:, 0], np.concatenate([b[1] for b in batches])
    )
    np.testing.assert_array_equal(data.conditions, np.concatenate([b[2] for b in batches]))
