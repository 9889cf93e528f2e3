"""The HTML report of ``caloforge evaluate``: plots and tables for a physicist to read.

``write_report`` turns an :class:`~caloforge.evaluation.evaluate.Evaluation` into
``report.html`` and the PNG files it shows, all in one folder, so the page opens offline: no
scripts, no network resources, inline CSS, images by relative path. In order, it shows

- the verdict: classifier AUCs (on the cells, the larger of the network's and the boosted
  trees'), FPD and KPD ×10³ (as CaloChallenge quotes them), the event counts, the threshold,
  the five features with the largest separation power and the notes;
- average shower images per layer, reference and generated side by side with their ratio
  (cartesian layers as images in mm, polar ones on polar axes);
- a histogram with a generated/reference ratio panel of every feature, titled with its
  separation power and W1, grouped by kind, and for several layers the mean per layer;
- the cell energy spectrum (3DGAN, NYU), the response E_tot/E_inc against E_inc (3DGAN,
  ATLAS), the correlation matrices of the metric features and their difference (3DGAN);
- the per-bin table, the condition KS p-values and the provenance of both files;
- the study validations whose key is in the metrics
  (:data:`~caloforge.evaluation.validations.VALIDATIONS`): on 3D-image detectors conditioned
  on E and θ, the 3DGAN seed's (``caloforge.evaluation.clic``, figures in ``clic_figures``,
  section in ``templates/clic.html``); on 3D-image detectors with photons and π⁰, the NYU
  seed's and the γ/π⁰ separability (``caloforge.evaluation.nyu``, ``nyu_figures``,
  ``templates/nyu.html``).

The same colours mean the same sample everywhere: reference blue and filled, generated red
points. The same Evaluation gives byte-identical files: PNGs carry no software or date stamp.

The package's modules:

- ``plotting``: the style, colours, sample labels, figure creation and saving every figure
  shares, the study validations' included; it imports nothing of the page;
- ``histograms``: a histogram of both samples with its ratio panel;
- ``features``: the order of the features, by kind, family and layer;
- ``figures``: the report's figures, each drawn from an Evaluation into one PNG;
- ``formatting``: how numbers are written;
- ``summary``: the headline numbers as rows of text (``summary_rows``, ``breakdown_rows``,
  ``cells_auc``), for the terminal too;
- ``page``: ``write_report``, each section's data for its template in
  ``evaluation/templates/``, which make all of the HTML.

``write_report`` is imported from here on first use, so that importing ``plotting`` does not
load the page.

References:
    | CaloChallenge 2022: a community challenge for fast calorimeter simulation
    | (Krause et al., 2024) https://arxiv.org/abs/2410.21611
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caloforge.evaluation.report.summary import breakdown_rows, cells_auc, summary_rows

__all__ = ["breakdown_rows", "cells_auc", "summary_rows", "write_report"]


def __getattr__(name: str) -> Any:
    # write_report on first use (PEP 562): the study validations' figures import ``plotting``,
    # and through it this package, without loading the page and its figures.
    if name == "write_report":
        from caloforge.evaluation.report.page import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # what the lazy name is, for type checkers, editors and the API docs
    from caloforge.evaluation.report.page import write_report
