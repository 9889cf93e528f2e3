"""metrics.json's schema: the printed names and units, and files of the first version read as
the current one."""

from __future__ import annotations

import json

import pytest

from caloforge.errors import CaloforgeError
from caloforge.evaluation.schema import SCHEMA_VERSION, Metrics, migrate, read_metrics
from caloforge.models import pretrained_models, resolve_model

VERSION_1 = {
    "n_reference": 100,
    "n_generated": 90,
    "classifier_auc_low": 0.7,
    "classifier_auc_low_trees": 0.8,
    "classifier_auc_high": 0.9,
    "fpd": 0.0425,
    "fpd_err": 0.001,
    "kpd": None,
    "separation_power": {"E_tot": 0.1, "width": 0.3},
    "by": {"condition": "energy", "values": [{"value": 1.0, "metrics": {"fpd": 0.5}}]},
}


def test_a_first_version_file_reads_with_the_printed_names_and_units():
    m = Metrics.model_validate(migrate(VERSION_1))
    assert m.schema_version == SCHEMA_VERSION
    assert (m.auc_cells_network, m.auc_cells_trees, m.auc_features) == (0.7, 0.8, 0.9)
    assert m.fpd_x1e3 == pytest.approx(42.5) and m.fpd_x1e3_err == pytest.approx(1.0)
    assert m.kpd_x1e3 is None
    assert m.auc_cells == 0.8 and m.largest_separation_power == ("width", 0.3)
    assert m.by["values"][0]["metrics"] == {"fpd_x1e3": 500.0}  # extra fields pass through


def test_the_current_version_is_left_as_it_is():
    current = migrate(VERSION_1)
    assert migrate(current) is current


def test_an_unknown_version_is_refused(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(CaloforgeError, match="schema version 99"):
        read_metrics(path)
    path.write_text("[1, 2]")
    with pytest.raises(CaloforgeError, match="not a metrics file"):
        read_metrics(path)


@pytest.mark.parametrize("name", pretrained_models())
def test_every_shipped_evaluation_is_of_the_current_version(name):
    m = read_metrics(resolve_model(name) / "metrics.json")
    assert m.schema_version == SCHEMA_VERSION
    assert json.loads((resolve_model(name) / "metrics.json").read_text())["schema_version"] == 2
    assert m.fpd_x1e3 is not None and m.fpd_x1e3 > 1  # ×10³: no model is within 10⁻³ of Geant4
