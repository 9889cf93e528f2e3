"""The evaluation's scale: every shipped yardstick is sound, readings fall where they should, and
the report and the terminal say them."""

from __future__ import annotations

from importlib import resources

import pytest

from caloforge.detectors import builtin_detectors
from caloforge.evaluation.yardstick import (
    HEADLINE,
    Point,
    Yardstick,
    headline,
    load_yardstick,
    read,
    verdict,
)

SHIPPED = sorted(
    p.name.removesuffix(".json")
    for p in (resources.files("caloforge.evaluation") / "yardsticks").iterdir()
    if p.name.endswith(".json")
)


def test_at_least_one_detector_has_a_scale():
    assert "lhcb-ecal" in SHIPPED


@pytest.mark.parametrize("detector", SHIPPED)
def test_a_shipped_scale_separates_its_floor_from_every_distortion(detector):
    yardstick = load_yardstick(detector)
    assert yardstick.detector == detector in builtin_detectors()
    assert set(yardstick.floor.values) == set(HEADLINE)
    for key in ("auc_features", "fpd_x1e3", "largest_separation_power"):
        floor = yardstick.floor.values[key]
        assert all(p.values[key] > floor for p in yardstick.distortions), key


def test_no_scale_for_an_unknown_detector():
    assert load_yardstick("no-such") is None
    assert verdict({"detector": "no-such"}) is None


SCALE = Yardstick(
    detector="lhcb-ecal",
    n_showers=4000,
    measured="a test scale",
    floor=Point(label="G4", values={"fpd_x1e3": 0.0, "auc_cells": 0.5}),
    distortions=[
        Point(label="x1.05", values={"fpd_x1e3": 43.0, "auc_cells": 0.78}),
        Point(label="neighbours", values={"fpd_x1e3": 75.0, "auc_cells": 0.93}),
    ],
)


@pytest.mark.parametrize(
    ("fpd", "level", "words"),
    [
        (10.0, "floor", "as Geant4 against Geant4 (0)"),
        (30.0, "mild", "between Geant4 against Geant4 (0) and x1.05 (43)"),
        (60.0, "between", "between x1.05 (43) and neighbours (75)"),
        (85.0, "beyond", "beyond every distortion measured, the largest being neighbours (75)"),
    ],
)
def test_a_number_is_read_between_its_neighbours_on_the_scale(fpd, level, words):
    (reading,) = [r for r in read({"fpd_x1e3": fpd}, SCALE) if r.key == "fpd_x1e3"]
    assert reading.level == level and f"FPD ×10³ {fpd:.3g}: {words}" in reading.sentence


def test_cells_are_judged_by_the_larger_classifier():
    metrics = {"auc_cells_network": 0.7, "auc_cells_trees": 0.95, "fpd_x1e3": float("nan")}
    assert headline(metrics) == {"auc_cells": 0.95}


def test_verdict_says_where_the_evaluation_differs_from_the_scale():
    metrics = {
        "detector": "lhcb-ecal",
        "n_reference": 300,
        "n_generated": 300,
        "fpd_x1e3": 50.0,
        "classifier": {"low": {"settings": "quick"}},
        "protocol": "calochallenge",
    }
    caveats = " ".join(verdict(metrics)["caveats"])
    assert "300 showers" in caveats and "quick" in caveats and "calochallenge" in caveats


def test_report_and_terminal_read_the_scale(tmp_path, cli):
    from tests.conftest import write_lhcb_like

    ref = write_lhcb_like(tmp_path / "ref.h5", 300, seed=1)
    gen = write_lhcb_like(tmp_path / "gen.h5", 300, seed=2, widen=1.3)
    code, shown, _ = cli(
        "evaluate", str(gen), str(ref), "--out", str(tmp_path / "eval"), "--no-classifier"
    )
    assert code == 0
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert "How to read this report" in page and "On this detector's scale" in page
    assert "FPD ×10³" in shown and "●" in shown and "level-" in page
