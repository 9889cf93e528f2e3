"""The study validations: a seed study's own comparison, run where its data fits.

Besides the common metrics, ``evaluate`` reproduces the comparisons that seed studies judged
their models by, on the detectors and conditions they apply to; each writes its results under
its key of ``metrics.json`` and gets a section of the report. A validation is a module that
implements :class:`Validation` (PEP 544: its constants and functions are the protocol's
members), one template in ``evaluation/templates/`` (its section of the page) and one entry in
:data:`VALIDATIONS`, which ``evaluate.compare``, ``write_report`` and the page's navigation go
through in order:

- ``clic``: the 3DGAN seed's (Khattak et al., arXiv:2109.07388) on 3D-image detectors
  conditioned on E and θ (:mod:`caloforge.evaluation.clic`, figures in ``clic_figures``,
  ``templates/clic.html``);
- ``nyu``: the NYU seed's (Guthrie, Malkin and Pine) and the γ/π⁰ separability on 3D-image
  detectors with photons and π⁰ (:mod:`caloforge.evaluation.nyu`, ``nyu_figures``,
  ``templates/nyu.html``);
- ``atlas``: the ATLAS seed's, per photon energy: response, resolution and the ATLAS shower
  shapes, on ATLAS-like detectors (:mod:`caloforge.evaluation.atlas`, ``atlas_figures``,
  ``templates/atlas.html``).

A module's figures draw with :mod:`caloforge.evaluation.report.plotting` only, imported when
its section is drawn, so that ``evaluate`` loads no matplotlib for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from caloforge.evaluation import atlas, clic, nyu

if TYPE_CHECKING:
    from caloforge.detectors import Detector
    from caloforge.evaluation.evaluate import Evaluation, Sample
    from caloforge.evaluation.report.plotting import Labels

__all__ = ["VALIDATIONS", "Validation"]


class Validation(Protocol):
    """A seed study's comparison of generated with reference showers, as a module."""

    KEY: str
    """Its key in metrics.json and its section's id in the report."""
    TITLE: str
    """Its name in the report: the section's heading and its link in the navigation."""
    TEMPLATE: str
    """Its section's template in ``evaluation/templates/``, filled by :meth:`section`."""

    def applies(self, detector: Detector, names: tuple[str, ...]) -> bool:
        """Whether the detector and the files' conditions (``names``) are the study's."""
        ...

    def measure(
        self,
        reference: Sample,
        generated: Sample,
        detector: Detector,
        names: tuple[str, ...],
        threshold: float,
        seed: int,
    ) -> dict[str, Any]:
        """Its results for metrics.json (plain values only), from both samples after the
        readout ``threshold`` (MeV); ``seed`` seeds whatever it draws at random."""
        ...

    def section(self, evaluation: Evaluation, labels: Labels, out_dir: Path) -> dict[str, Any]:
        """The context of :attr:`TEMPLATE`, from ``evaluation.metrics[KEY]`` (and the samples,
        where a figure needs them), its figures drawn into ``out_dir``."""
        ...

    def summary(self, results: dict[str, Any]) -> dict[str, float]:
        """The figures the study judged its models by, name → value, from ``measure``'s
        results: one column each in a table of models or of training snapshots."""
        ...


VALIDATIONS: tuple[Validation, ...] = (clic, nyu, atlas)
"""Every study validation, in the order of metrics.json and of the page."""
