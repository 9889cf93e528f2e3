"""The study validations' registry: every entry is complete, and none applies where its study's
data is not (the LHCb ECAL with its conditions)."""

from __future__ import annotations

import pytest

from caloforge.detectors import load_detector
from caloforge.evaluation.report.page import TEMPLATES
from caloforge.evaluation.validations import VALIDATIONS

LHCB_CONDITIONS = ("px", "py", "pz", "x", "y")


def test_keys_are_unique_and_clear_of_the_common_metrics():
    keys = [v.KEY for v in VALIDATIONS]
    assert len(set(keys)) == len(keys) == 3
    assert not {"bins", "conditions", "by", "notes", "verdict"} & set(keys)


@pytest.mark.parametrize("validation", VALIDATIONS, ids=lambda v: v.KEY)
def test_each_has_a_key_a_title_and_a_template(validation):
    assert validation.KEY.isidentifier()
    assert validation.TITLE.strip()
    assert validation.TEMPLATE in TEMPLATES.list_templates()
    TEMPLATES.get_template(validation.TEMPLATE)  # it parses
    assert callable(validation.summary)


@pytest.mark.parametrize("validation", VALIDATIONS, ids=lambda v: v.KEY)
def test_none_applies_to_the_lhcb_ecal(validation):
    assert not validation.applies(load_detector("lhcb-ecal"), LHCB_CONDITIONS)
