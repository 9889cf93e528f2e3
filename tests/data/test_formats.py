"""Foreign formats: each test writes a small file in the foreign layout itself, converts it and
reads it back, checking values, cell order, units and conditions."""

import h5py
import numpy as np
import pytest

from caloforge.data.formats import (
    FORMATS,
    calogan_detector,
    convert,
    detector_from_calochallenge_xml,
    open_foreign,
    to_calochallenge,
)
from caloforge.data.showerfile import (
    CALIBRATED,
    VISIBLE,
    CaloforgeWarning,
    EnergyUnit,
    ShowerFile,
    partial_path,
)
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError

PAR04_EDGES = "0,4.65,9.3,13.95,18.6,23.25,27.9,32.55,37.2,41.85"


def binning_xml(layers, pid="11", name="electron"):
    """A binning file in the layout of CaloChallenge's binning_dataset_*.xml."""
    rows = "\n".join(
        f'      <Layer id="{i}" r_edges="{edges}" n_bin_alpha="{alpha}" />'
        for i, (edges, alpha) in enumerate(layers)
    )
    return f'<Bins>\n   <Bin pid="{pid}" name="{name}">\n{rows}\n   </Bin>\n</Bins>\n'


def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5[key] = value
    return path


def check_attrs(f, fmt, src, detector_name):
    assert f.complete
    assert f.detector.name == detector_name
    assert f.producer == {"kind": "converted", "format": fmt, "from": str(src)}
    assert f.attrs["cell_order"] == f.detector.cell_order
    assert "source" not in f.attrs


def test_formats_are_named():
    assert FORMATS == ("calochallenge", "calogan", "lhcb-npz", "3dgan")


def test_calochallenge_par04_by_cell_count(tmp_path, rng):
    showers = rng.exponential(1.0, (5, 6480)).astype(np.float32)
    # layer 3, angle bin 5, radius bin 2: CaloChallenge orders voxels (layer, alpha, r)
    showers[1, 3 * 144 + 5 * 9 + 2] = 777.0
    energies = rng.uniform(1e3, 1e6, (5, 1))
    src = write_h5(tmp_path / "ds2.hdf5", incident_energies=energies, showers=showers)
    out = convert(src, tmp_path / "out.h5", "calochallenge", batch_size=2)
    f = ShowerFile(out)
    check_attrs(f, "calochallenge", src, "par04")
    batch = f.read()
    # Dataset 2 holds Si energy / 0.033; caloforge files hold the Si energy itself.
    assert f.energy_unit == EnergyUnit(VISIBLE)
    np.testing.assert_allclose(batch.showers, showers * np.float32(0.033), rtol=1e-6)
    assert np.array_equal(batch.incident_energies, energies)
    assert f.condition_names == ("energy",) and np.array_equal(batch.conditions, energies)
    layer, alpha, r = 3, 5, 2
    assert f.detector.split_layers(batch.showers)[layer][1, alpha, r] == np.float32(777.0 * 0.033)


def test_calochallenge_with_binning_xml(tmp_path, rng):
    layers = [("0,5,10,30", 1), ("0", 1), ("0,2,4,6,8", 10)]
    xml = tmp_path / "binning.xml"
    xml.write_text(binning_xml(layers, pid="22", name="photon"))
    showers = rng.exponential(1.0, (4, 3 + 40)).astype(np.float32)
    src = write_h5(tmp_path / "ds1.hdf5", incident_energies=[[256.0]] * 4, showers=showers)
    out = convert(src, tmp_path / "out.h5", "calochallenge", binning=xml)
    f = ShowerFile(out)
    check_attrs(f, "calochallenge", src, "calochallenge-photon")
    assert [layer.name for layer in f.detector.readout_layers] == ["layer0", "layer2"]
    assert not f.detector.simulatable
    assert np.array_equal(f.read().showers, showers)
    # Dataset 1's calibrated energies have no known sampling fraction: kept, and said so.
    assert f.energy_unit == EnergyUnit(CALIBRATED, None)


def test_calochallenge_uses_caloforge_detector_attribute(tmp_path):
    src = write_h5(tmp_path / "in.h5", incident_energies=[[1e3]] * 2, showers=np.ones((2, 900)))
    with h5py.File(src, "a") as h5:
        h5.attrs["detector"] = load_detector("lhcb-ecal").model_dump_json()
    f = ShowerFile(convert(src, tmp_path / "out.h5", "calochallenge"))
    assert f.detector.name == "lhcb-ecal"


def test_calochallenge_without_binning_asks_for_it(tmp_path, rng):
    src = write_h5(tmp_path / "ds3.hdf5", incident_energies=[[1e3]], showers=np.ones((1, 40)))
    with pytest.raises(CaloforgeError, match="--binning"):
        convert(src, tmp_path / "out.h5", "calochallenge")


def test_calochallenge_cell_count_must_match_binning(tmp_path):
    xml = tmp_path / "b.xml"
    xml.write_text(binning_xml([("0,1,2", 4)]))
    src = write_h5(tmp_path / "in.h5", incident_energies=[[1e3]], showers=np.ones((1, 9)))
    with pytest.raises(CaloforgeError, match=r"9 cells per shower but the binning .* has 8"):
        convert(src, tmp_path / "out.h5", "calochallenge", binning=xml)
    assert not (tmp_path / "out.h5").exists() and not partial_path(tmp_path / "out.h5").exists()


def test_xml_equal_to_par04_gives_the_builtin(tmp_path):
    xml = tmp_path / "binning_dataset_2.xml"
    xml.write_text(binning_xml([(PAR04_EDGES, 16)] * 45))
    detector = detector_from_calochallenge_xml(xml)
    assert detector == load_detector("par04") and detector.simulatable
    one_less = detector_from_calochallenge_xml(binning_xml([(PAR04_EDGES, 16)] * 44))
    assert one_less.name == "calochallenge-electron" and one_less.n_cells == 44 * 144


def test_xml_layers_and_geometry():
    xml = binning_xml([("0,5,10", 1), ("0", 1), ("0,2,4,8", 4)])
    detector = detector_from_calochallenge_xml(xml)
    assert [layer.readout.r_edges for layer in detector.readout_layers] == [
        (0.0, 5.0, 10.0),
        (0.0, 2.0, 4.0, 8.0),
    ]
    assert [layer.readout.n_alpha for layer in detector.readout_layers] == [1, 4]
    assert detector.size == (20.0, 20.0)
    # second layer, alpha bin 1 of 4 (centre -pi/4), radius bin 2 (centre 6 mm)
    x, y, _ = detector.cell_centres[2 + 1 * 3 + 2]
    assert np.allclose([x, y], [6 * np.cos(-np.pi / 4), 6 * np.sin(-np.pi / 4)])


def test_xml_with_several_particles():
    xml = (
        '<Bins><Bin pid="22" name="photon"><Layer id="0" r_edges="0,1" n_bin_alpha="1"/></Bin>'
        '<Bin pid="211" name="pion"><Layer id="0" r_edges="0,1,2" n_bin_alpha="1"/></Bin></Bins>'
    )
    assert detector_from_calochallenge_xml(xml, particle="211").n_cells == 2
    assert detector_from_calochallenge_xml(xml, particle="photon").n_cells == 1
    with pytest.raises(CaloforgeError, match=r"photon .*pion"):
        detector_from_calochallenge_xml(xml)
    with pytest.raises(CaloforgeError, match="no binning for particle 'kaon'"):
        detector_from_calochallenge_xml(xml, particle="kaon")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<Bins><Bin>", "not valid XML"),
        ("<Other/>", "no <Bin>"),
        (binning_xml([("0", 1)]), "no layer with voxels"),
        (binning_xml([("0,2,1", 1)]), "r_edges"),
        ('<Bins><Bin name="e"><Layer id="0" r_edges="0,1"/></Bin></Bins>', "n_bin_alpha"),
    ],
)
def test_bad_xml(text, message):
    with pytest.raises(CaloforgeError, match=message):
        detector_from_calochallenge_xml(text)


def test_missing_binning_file(tmp_path):
    with pytest.raises(CaloforgeError, match="no such binning file"):
        detector_from_calochallenge_xml(tmp_path / "none.xml")


def calogan_file(path, rng, n=4):
    layers = {
        "layer_0": rng.exponential(1.0, (n, 3, 96)),
        "layer_1": rng.exponential(1.0, (n, 12, 12)),
        "layer_2": rng.exponential(1.0, (n, 12, 6)),
    }
    # CaloGAN indexes [event, x bin, y bin]
    layers["layer_0"][2, 1, 50] = 555.0
    layers["layer_1"][2, 2, 7] = 666.0
    energy = rng.uniform(1, 100, (n, 1))  # GeV
    overflow = rng.uniform(0, 10, (n, 3))  # MeV
    return write_h5(path, energy=energy, overflow=overflow, **layers), layers, energy, overflow


def test_calogan(tmp_path, rng):
    src, layers, energy, overflow = calogan_file(tmp_path / "eplus.hdf5", rng)
    f = ShowerFile(convert(src, tmp_path / "out.h5", "calogan", batch_size=3))
    check_attrs(f, "calogan", src, "calogan")
    batch = f.read()
    assert f.n_cells == 3 * 96 + 12 * 12 + 12 * 6
    # caloforge order is y-major: layer 0 cell (x=1, y=50), layer 1 cell (x=2, y=7)
    assert batch.showers[2, 50 * 3 + 1] == np.float32(555.0)
    assert batch.showers[2, 288 + 7 * 12 + 2] == np.float32(666.0)
    x, y, _ = f.detector.cell_centres[288 + 7 * 12 + 2]
    assert (x, y) == (-140.0, 60.0)
    for i, part in enumerate(f.detector.split_layers(batch.showers)):
        assert np.allclose(part, layers[f"layer_{i}"].transpose(0, 2, 1))
    assert np.allclose(batch.incident_energies, energy * 1000)
    assert np.allclose(batch.conditions, energy * 1000)
    assert np.allclose(batch.extras["overflow_1"], overflow[:, 1])


def test_calogan_detector_is_readout_only():
    detector = calogan_detector()
    assert not detector.simulatable
    assert [layer.readout.extent for layer in detector.readout_layers] == [(480.0, 480.0)] * 3


def lhcb_file(path, rng, n=5, point_columns=3):
    deposit = rng.exponential(1.0, (n, 30, 30))
    deposit[3, 20, 4] = 999.0  # [event, x cell, y cell]
    point = rng.uniform(-0.5, 0.5, (n, point_columns))  # cm
    momentum = rng.normal(0, 5, (n, 3))  # GeV
    momentum[:, 2] = rng.uniform(1, 100, n)
    pdg = np.full(n, 11)
    np.savez(
        path,
        EnergyDeposit=deposit,
        ParticlePoint=point,
        ParticleMomentum=momentum,
        ParticlePDG=pdg,
        TotalEnergySci=deposit.sum(axis=(1, 2)),
        TotalEnergyAbsorb=rng.uniform(size=n),
    )
    return path, deposit, point, momentum


@pytest.mark.parametrize("point_columns", [2, 3])
def test_lhcb_npz(tmp_path, rng, point_columns):
    src, deposit, point, momentum = lhcb_file(
        tmp_path / "lhcb.npz", rng, point_columns=point_columns
    )
    f = ShowerFile(convert(src, tmp_path / "out.h5", "lhcb-npz", batch_size=2))
    check_attrs(f, "lhcb-npz", src, "lhcb-ecal")
    batch = f.read()
    assert batch.showers[3, 4 * 30 + 20] == np.float32(999.0)
    x, y, _ = f.detector.cell_centres[4 * 30 + 20]
    assert (x, y) == (110.0, -210.0)
    assert np.allclose(batch.showers.reshape(-1, 30, 30), deposit.transpose(0, 2, 1))
    assert f.condition_names == ("px", "py", "pz", "x", "y")
    assert np.allclose(batch.conditions[:, :3], momentum * 1000)
    assert np.allclose(batch.conditions[:, 3:], point[:, :2] * 10)
    mass = 0.51099895
    p = np.linalg.norm(momentum * 1000, axis=1)
    assert np.allclose(batch.incident_energies[:, 0], np.sqrt(p**2 + mass**2) - mass)
    assert np.array_equal(batch.extras["pdg"], np.full(5, 11.0))


def test_lhcb_unknown_pdg(tmp_path, rng):
    src, *_ = lhcb_file(tmp_path / "lhcb.npz", rng)
    arrays = dict(np.load(src))
    arrays["ParticlePDG"] = np.full(5, 321)
    np.savez(src, **arrays)
    with pytest.raises(CaloforgeError, match="321"):
        open_foreign(src, "lhcb-npz")


def test_3dgan(tmp_path, rng):
    ecal = np.zeros((3, 51, 51, 25), np.float32)  # [event, x, y, layer], GeV x 50
    ecal[1, 10, 40, 7] = 2.5
    ecal[2, 25, 25, 0] = 1.0
    energy = rng.uniform(100, 200, 3)  # GeV
    theta = np.radians([60.0, 90.0, 120.0])
    src = write_h5(tmp_path / "Ele.h5", ECAL=ecal, energy=energy, theta=theta)
    f = ShowerFile(convert(src, tmp_path / "out.h5", "3dgan"))
    check_attrs(f, "3dgan", src, "clic-ecal")
    batch = f.read()
    # their y (the tilt direction) is caloforge's x, their x caloforge's y
    index = 7 * 51 * 51 + 10 * 51 + 40
    assert batch.showers[1, index] == np.float32(2.5 * 20)
    assert batch.showers[1].sum() == np.float32(50.0)
    x, y, _ = f.detector.cell_centres[index]
    assert np.allclose([x, y], [(40 - 25) * 5.1, (10 - 25) * 5.1])
    assert f.condition_names == ("energy", "theta")
    assert np.allclose(batch.conditions, np.column_stack([energy * 1000, [60, 90, 120]]))
    assert np.allclose(batch.incident_energies[:, 0], energy * 1000)


def test_3dgan_energy_scale_override(tmp_path):
    ecal = np.ones((1, 51, 51, 25), np.float32)
    src = write_h5(tmp_path / "g.h5", ECAL=ecal, energy=[150.0], theta=[1.5])
    f = ShowerFile(convert(src, tmp_path / "out.h5", "3dgan", energy_scale=1000))
    assert np.all(f.read().showers == 1000)


def test_3dgan_theta_must_be_radians(tmp_path):
    ecal = np.ones((1, 51, 51, 25), np.float32)
    src = write_h5(tmp_path / "g.h5", ECAL=ecal, energy=[150.0], theta=[90.0])
    with pytest.raises(CaloforgeError, match="radians"):
        convert(src, tmp_path / "out.h5", "3dgan")


def test_missing_key_says_which(tmp_path, rng):
    src, *_ = calogan_file(tmp_path / "c.h5", rng)
    with h5py.File(src, "a") as h5:
        del h5["layer_2"]
    with pytest.raises(CaloforgeError, match="no 'layer_2' dataset; a calogan file needs energy"):
        convert(src, tmp_path / "out.h5", "calogan")
    npz = tmp_path / "l.npz"
    np.savez(npz, EnergyDeposit=np.ones((1, 30, 30)), ParticlePoint=np.zeros((1, 2)))
    with pytest.raises(CaloforgeError, match="no 'ParticleMomentum' array"):
        convert(npz, tmp_path / "out.h5", "lhcb-npz")


@pytest.mark.parametrize(
    ("fmt", "datasets", "message"),
    [
        (
            "3dgan",
            {"ECAL": np.ones((1, 25, 25, 25)), "energy": [1.0], "theta": [1.0]},
            "51, 51, 25",
        ),
        ("calogan", {"energy": [1.0], "layer_0": np.ones((1, 96, 3))}, "layer_0"),
        ("calochallenge", {"incident_energies": [1.0], "showers": np.ones((1, 4, 4))}, "showers"),
        (
            "calochallenge",
            {"incident_energies": [[1.0]] * 2, "showers": np.ones((3, 6480))},
            "disagree",
        ),
    ],
)
def test_wrong_shapes(tmp_path, fmt, datasets, message):
    if fmt == "calogan":
        datasets |= {"layer_1": np.ones((1, 12, 12)), "layer_2": np.ones((1, 12, 6))}
    src = write_h5(tmp_path / "in.h5", **datasets)
    with pytest.raises(CaloforgeError, match=message):
        convert(src, tmp_path / "out.h5", fmt)


def test_lhcb_wrong_shape(tmp_path):
    npz = tmp_path / "l.npz"
    np.savez(
        npz,
        EnergyDeposit=np.ones((2, 30, 31)),
        ParticlePoint=np.zeros((2, 2)),
        ParticleMomentum=np.ones((2, 3)),
        ParticlePDG=[11, 11],
    )
    with pytest.raises(CaloforgeError, match=r"'EnergyDeposit' has shape \(2, 30, 31\)"):
        convert(npz, tmp_path / "out.h5", "lhcb-npz")


def test_files_of_the_wrong_kind(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a shower file")
    for fmt in ("calochallenge", "calogan", "3dgan"):
        with pytest.raises(CaloforgeError, match="not an HDF5 file"):
            convert(text, tmp_path / "out.h5", fmt)
    with pytest.raises(CaloforgeError, match=r"not an \.npz archive"):
        convert(text, tmp_path / "out.h5", "lhcb-npz")
    with pytest.raises(CaloforgeError, match="no such file"):
        convert(tmp_path / "none.h5", tmp_path / "out.h5", "calogan")
    with pytest.raises(CaloforgeError, match="no such file"):
        convert(tmp_path / "none.npz", tmp_path / "out.h5", "lhcb-npz")


def test_unknown_format_and_misplaced_binning(tmp_path):
    with pytest.raises(CaloforgeError, match="unknown format 'root'; known formats: calochallenge"):
        convert(tmp_path / "x", tmp_path / "out.h5", "root")
    with pytest.raises(CaloforgeError, match="--binning applies to calochallenge"):
        convert(tmp_path / "x", tmp_path / "out.h5", "3dgan", binning=tmp_path / "b.xml")


def test_nan_stops_and_leaves_only_a_partial_file(tmp_path, rng):
    showers = rng.uniform(size=(5, 6480)).astype(np.float32)
    showers[4, 10] = np.nan
    src = write_h5(tmp_path / "in.h5", incident_energies=[[1e3]] * 5, showers=showers)
    out = tmp_path / "out.h5"
    with pytest.raises(CaloforgeError, match=r"NaN or infinite energies .*event 4"):
        convert(src, out, "calochallenge", batch_size=2)
    assert not out.exists()
    partial = ShowerFile(partial_path(out))
    assert len(partial) == 4 and not partial.complete


def test_nan_condition(tmp_path, rng):
    src, *_ = calogan_file(tmp_path / "c.h5", rng)
    with h5py.File(src, "a") as h5:
        h5["energy"][2, 0] = np.inf
    with pytest.raises(CaloforgeError, match=r"infinite incident energy .*event 2"):
        convert(src, tmp_path / "out.h5", "calogan")


def test_negative_cells_clipped_with_warning(tmp_path):
    showers = np.ones((2, 6480), np.float32)
    showers[0, 0] = -3.0
    src = write_h5(tmp_path / "in.h5", incident_energies=[[1e3]] * 2, showers=showers)
    with pytest.warns(CaloforgeWarning, match="clipped 1 negative"):
        out = convert(src, tmp_path / "out.h5", "calochallenge")
    assert ShowerFile(out).read().showers.min() == 0


def test_output_exists(tmp_path, rng):
    src, *_ = calogan_file(tmp_path / "c.h5", rng)
    out = convert(src, tmp_path / "out.h5", "calogan")
    with pytest.raises(CaloforgeError, match="exists"):
        convert(src, out, "calogan")
    assert convert(src, out, "calogan", overwrite=True) == out
    with pytest.raises(CaloforgeError, match="is the input file"):
        convert(src, src, "calogan", overwrite=True)


def test_reader_streams_in_batches(tmp_path, rng):
    src, *_ = calogan_file(tmp_path / "c.h5", rng, n=7)
    reader = open_foreign(src, "calogan")
    assert len(reader) == 7 and reader.detector.name == "calogan"
    assert [len(b) for b in reader.iter_batches(3)] == [3, 3, 1]
    with pytest.raises(CaloforgeError, match="batch size"):
        next(reader.iter_batches(0))
    with pytest.raises(CaloforgeError, match="energy scale"):
        open_foreign(src, "calogan", energy_scale=-1)
    assert reader.extra_names == ("overflow_0", "overflow_1", "overflow_2")


def write_par04(path, showers, energies):
    """A caloforge par04 file (visible MeV), as simulate writes them."""
    from caloforge.data.showerfile import ShowerBatch, ShowerWriter

    attrs = {"detector": load_detector("par04").to_yaml(), "seed": 1}
    with ShowerWriter.create(path, n_cells=6480, condition_names=("energy",), attrs=attrs) as w:
        w.append(ShowerBatch(showers, energies, energies))
    return path


def test_calochallenge_round_trip(tmp_path, rng):
    showers = rng.exponential(0.01, (6, 6480)).astype(np.float32)
    energies = rng.uniform(1e3, 2e4, (6, 1))
    ours = write_par04(tmp_path / "ours.h5", showers, energies)
    written = ShowerFile(to_calochallenge(ours, tmp_path / "cc.h5", batch_size=4))
    assert written.energy_unit == EnergyUnit(CALIBRATED, 0.033)
    with h5py.File(written.path) as h5:
        np.testing.assert_allclose(h5["showers"][:], showers / np.float32(0.033), rtol=1e-6)
        assert h5["incident_energies"].shape == (6, 1)
    back = ShowerFile(convert(written.path, tmp_path / "back.h5", "calochallenge"))
    assert back.energy_unit == EnergyUnit(VISIBLE)
    np.testing.assert_allclose(back.read().showers, showers, rtol=1e-6)
    other = to_calochallenge(ours, tmp_path / "cc2.h5", sampling_fraction=0.05)
    assert ShowerFile(other).energy_unit.sampling_fraction == 0.05
    back = ShowerFile(convert(other, tmp_path / "back2.h5", "calochallenge"))
    np.testing.assert_allclose(back.read().showers, showers, rtol=1e-6)


def test_to_calochallenge_refusals(tmp_path, rng):
    from tests.conftest import write_lhcb_like

    lhcb = write_lhcb_like(tmp_path / "lhcb.h5", 5, seed=1)
    with pytest.raises(CaloforgeError, match="no sampling fraction; give one"):
        to_calochallenge(lhcb, tmp_path / "out.h5")
    ours = write_par04(tmp_path / "ours.h5", np.ones((1, 6480), np.float32), [[1e3]])
    cc = to_calochallenge(ours, tmp_path / "cc.h5")
    with pytest.raises(CaloforgeError, match="already calibrated"):
        to_calochallenge(cc, tmp_path / "cc2.h5")
    with pytest.raises(CaloforgeError, match=r"in \(0, 1\]"):
        to_calochallenge(ours, tmp_path / "cc3.h5", sampling_fraction=2.0)


def test_convert_cli_to_and_from(tmp_path, cli):
    ours = write_par04(tmp_path / "ours.h5", np.ones((2, 6480), np.float32), [[1e3], [2e3]])
    code, out, _ = cli("convert", str(ours), str(tmp_path / "cc.h5"), "--to", "calochallenge")
    assert code == 0 and "calibrated MeV (visible / sampling fraction 0.033)" in out
    for args, message in (
        ((), "exactly one of --from"),
        (("--from", "calochallenge", "--to", "calochallenge"), "exactly one of --from"),
        (("--to", "npz"), "unknown output format"),
        (("--from", "calochallenge", "--sampling-fraction", "0.1"), "applies to --to"),
    ):
        code, _, err = cli("convert", str(ours), str(tmp_path / "x.h5"), *args)
        assert code == 1 and message in err and "Traceback" not in err
