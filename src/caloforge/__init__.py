"""caloforge: fast calorimeter simulation with Geant4 reference showers and generative models.

The pipeline as Python functions, one per CLI command of the same name::

    import caloforge

    run = caloforge.simulate("lhcb-ecal", "lhcb", n_events=100, out="g4.h5")
    made = caloforge.generate("lhcb-ecal-fm-student", "fm.h5", conditions_from=run.path)
    result = caloforge.evaluate(made.path, run.path, quick=True)
    caloforge.write_report(result, "report/")

Importing the package is cheap: each name loads its module (torch, Geant4) on first use.
Every function takes Python values, returns a result object and raises
:class:`CaloforgeError` (:class:`InvalidArgument` naming the parameter) for what a user can
get wrong. Each works from a plain script or a notebook: Geant4 workers start as fresh
interpreters that do not run the caller's script.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from caloforge.errors import CaloforgeError, InvalidArgument

__version__ = "0.1.0"

_HOMES = {
    "simulate": "caloforge.geant4.run",
    "merge": "caloforge.geant4.run",
    "train": "caloforge.training.loop",
    "TrainingSettings": "caloforge.training.loop",
    "generate": "caloforge.generation",
    "evaluate": "caloforge.evaluation.evaluate",
    "write_metrics": "caloforge.evaluation.evaluate",
    "write_report": "caloforge.evaluation.report",
    "export": "caloforge.runtimes",
    "bench": "caloforge.timing",
    "load_model": "caloforge.models",
    "families": "caloforge.models",
    "pretrained_models": "caloforge.models",
    "load_detector": "caloforge.detectors",
    "builtin_detectors": "caloforge.detectors",
    "load_source": "caloforge.sources",
    "builtin_sources": "caloforge.sources",
    "ShowerFile": "caloforge.data.showerfile",
}
"""Each public name and the module it lives in, imported on first use (PEP 562)."""

__all__ = [
    "CaloforgeError",
    "InvalidArgument",
    "ShowerFile",
    "TrainingSettings",
    "__version__",
    "bench",
    "builtin_detectors",
    "builtin_sources",
    "evaluate",
    "export",
    "families",
    "generate",
    "load_detector",
    "load_model",
    "load_source",
    "merge",
    "pretrained_models",
    "simulate",
    "train",
    "write_metrics",
    "write_report",
]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'caloforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from caloforge.data.showerfile import ShowerFile
    from caloforge.detectors import builtin_detectors, load_detector
    from caloforge.evaluation.evaluate import evaluate, write_metrics
    from caloforge.evaluation.report import write_report
    from caloforge.geant4.run import merge, simulate
    from caloforge.generation import generate
    from caloforge.models import families, load_model, pretrained_models
    from caloforge.runtimes import export
    from caloforge.sources import builtin_sources, load_source
    from caloforge.timing import bench
    from caloforge.training.loop import TrainingSettings, train
