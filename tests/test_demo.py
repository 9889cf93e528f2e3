import json

import pytest

from caloforge.demo import demo
from caloforge.errors import CaloforgeError


@pytest.mark.filterwarnings("ignore::caloforge.data.showerfile.CaloforgeWarning")
def test_demo_runs_the_whole_pipeline(tmp_path, tiny_model):
    result = demo(tmp_path / "demo", model=tiny_model, n_geant4=24, n_timing=64, jobs=2)
    for name in ("geant4.h5", "generated.h5", "metrics.json", "report.html"):
        assert (tmp_path / "demo" / name).exists()
    assert result.geant4_ms_per_shower > 0 and result.model_ms_per_shower > 0
    assert result.model_batch == 64  # n_timing below one batch of 1000: timed as one batch
    assert result.speedup == result.geant4_ms_per_shower / result.model_ms_per_shower
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["n_reference"] == metrics["n_generated"] == 24
    # The demo's own files are replaced on a second run rather than refused.
    demo(tmp_path / "demo", model=tiny_model, n_geant4=24, n_timing=8, jobs=1)


def test_demo_refuses_too_few_showers(tmp_path):
    with pytest.raises(CaloforgeError, match="at least 20"):
        demo(tmp_path, n_geant4=5)


def test_demo_refuses_a_model_of_another_detector(tmp_path):
    with pytest.raises(CaloforgeError, match="clic-ecal model"):
        demo(tmp_path, model="clic-ecal-3dgan")
    assert not any(tmp_path.iterdir())
