"""Shower files: HDF5, a superset of the CaloChallenge layout.

Datasets: ``incident_energies`` (N, 1) MeV, ``showers`` (N, n_cells) float32 MeV, ``conditions``
(N, k) with attribute ``names``, and optional per-event ``extra/NAME`` (N,). File attributes:
``detector`` (YAML), ``source`` (YAML), ``producer`` (JSON), ``seed``, ``caloforge_version``,
``cell_order``, ``energy_unit`` and ``sampling_fraction`` (see ``EnergyUnit``), ``n_committed``
and ``n_planned``.

Writing is crash-safe in two ways. A file being written carries the suffix ``.partial`` and gets
its final name only when every planned event is in. Inside it, ``n_committed`` is raised only
after an append has been written and flushed, so a reader (or a resumed writer) of an interrupted
file sees exactly the complete events. CaloChallenge files without these attributes read as they
are, their incident energy standing in as the one condition ``energy``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from caloforge.errors import CaloforgeError
from caloforge.files import write_error

__all__ = [
    "CALIBRATED",
    "VISIBLE",
    "CaloforgeWarning",
    "EnergyUnit",
    "ShowerBatch",
    "ShowerFile",
    "ShowerWriter",
    "check_energies",
    "copy_events",
    "open_h5",
    "partial_path",
    "refuse_same_file",
]

PARTIAL = ".partial"
_CHUNK_BYTES = 1 << 18
"""Bytes of one HDF5 chunk of showers. Each append re-compresses the chunk it ends in, so its cost
grows with the chunk: 256 kB keeps gzip's ratio and an append of 250 lhcb-ecal showers at ~15 ms
(1 MB: ~25 ms for 50)."""
_ROWS = 512
"""Events per HDF5 chunk of the per-event columns (energies, conditions, extras), for the same
reason."""


VISIBLE = "visible MeV"
CALIBRATED = "calibrated MeV"


@dataclass(frozen=True)
class EnergyUnit:
    """The unit of a file's cell energies.

    caloforge files hold **visible energy in MeV**: the energy deposited in the active material
    of each cell, as Geant4 scores it, with no calibration. Files of other projects may hold
    calibrated energies, visible energy divided by a sampling fraction, so that E_tot/E_inc is
    near 1: CaloChallenge datasets 2 and 3 store Par04's silicon energy / 0.033. A calibrated
    file states the fraction it divided by, or None where its producer did not say.
    Thresholds (``Detector.threshold``) are in visible MeV; ``threshold`` gives one in this unit.
    """

    kind: str = VISIBLE
    sampling_fraction: float | None = None

    def __str__(self) -> str:
        if self.kind == CALIBRATED:
            fraction = (
                "unknown" if self.sampling_fraction is None else f"{self.sampling_fraction:g}"
            )
            return f"{self.kind} (visible / sampling fraction {fraction})"
        return self.kind

    def threshold(self, visible: float) -> float:
        """A threshold in visible MeV expressed in this unit."""
        if self.kind == CALIBRATED and self.sampling_fraction:
            return visible / self.sampling_fraction
        return visible

    def attrs(self) -> dict[str, Any]:
        """The file attributes that state this unit."""
        attrs: dict[str, Any] = {"energy_unit": self.kind}
        if self.sampling_fraction is not None:
            attrs["sampling_fraction"] = float(self.sampling_fraction)
        return attrs


class CaloforgeWarning(UserWarning):
    """Something a user should know about their data, though the work goes on."""


def partial_path(path: str | Path) -> Path:
    """Where a file is written until it is complete."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL)


@dataclass
class ShowerBatch:
    """Showers with their incident energies, conditions and per-event extras."""

    showers: np.ndarray
    incident_energies: np.ndarray
    conditions: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.showers)
        if self.showers.ndim != 2:
            raise CaloforgeError(f"showers must be 2-D (events, cells), got {self.showers.shape}")
        self.incident_energies = np.asarray(self.incident_energies, dtype=np.float64).reshape(-1, 1)
        self.conditions = np.asarray(self.conditions, dtype=np.float64)
        if self.conditions.ndim == 1:
            self.conditions = self.conditions[:, None]
        columns = {"incident_energies": self.incident_energies, "conditions": self.conditions}
        for name, array in {**columns, **self.extras}.items():
            if len(array) != n:
                raise CaloforgeError(f"{name} has {len(array)} events but showers has {n}")

    def __len__(self) -> int:
        return len(self.showers)


def check_energies(
    showers: np.ndarray,
    origin: str,
    first_event: int = 0,
    incident: np.ndarray | None = None,
) -> np.ndarray:
    """Refuse NaN or infinite cell energies, and with ``incident`` (MeV per event) showers whose
    visible energy exceeds what their particle brought; clip negative ones to 0 with a warning.

    Geant4 never deposits negative energy; negative cells come from electronic noise in real
    detectors (the ATLAS study set them to 0) or from a generative model's output. Clipping
    keeps such files usable, and the warning says how much was clipped, so a model that makes
    negative energies is not hidden.
    """
    finite = np.isfinite(showers)
    if not finite.all():
        event = first_event + int(np.argwhere(~finite)[0, 0])
        raise CaloforgeError(f"{origin} has NaN or infinite energies (first in event {event})")
    if incident is not None:
        total = showers.sum(axis=1, dtype=np.float64)
        over = total > np.asarray(incident, dtype=np.float64).reshape(-1)
        if over.any():
            i = int(np.argmax(over))
            raise CaloforgeError(
                f"{origin} put {total[i]:.6g} MeV in event {first_event + i}, more than its "
                f"incident {float(np.asarray(incident).reshape(-1)[i]):.6g} MeV"
            )
    negative = showers < 0
    if negative.any():
        count = int(negative.sum())
        warnings.warn(
            f"{origin}: clipped {count} negative cell energies to 0 "
            f"(most negative {float(showers.min()):.3g} MeV)",
            CaloforgeWarning,
            stacklevel=3,
        )
        showers = np.where(negative, 0, showers).astype(showers.dtype)
    return showers


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning a missing, unreadable or non-HDF5 file into one clear error."""
    if not path.exists():
        raise CaloforgeError(f"no such file: {path}")
    if not path.is_file():
        raise CaloforgeError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise CaloforgeError(f"cannot read {path}: permission denied")
    if not h5py.is_hdf5(path):
        raise CaloforgeError(f"{path} is not an HDF5 file")
    try:
        return h5py.File(path, mode)
    except BlockingIOError:
        raise CaloforgeError(
            f"{path} is open for writing by another process (a running simulate or generate?); "
            "wait until it finishes"
        ) from None
    except OSError as exc:
        raise CaloforgeError(f"cannot open {path}: {str(exc).splitlines()[0]}") from None


class ShowerFile:
    """Read access to a shower file: whole, by slice, or in batches.

    Only the committed events are visible. Example:

        >>> import tempfile, numpy as np
        >>> path = Path(tempfile.mkdtemp()) / "s.h5"
        >>> with ShowerWriter.create(path, n_cells=4, condition_names=("energy",)) as w:
        ...     w.append(ShowerBatch(np.ones((3, 4), np.float32), [1, 2, 3], [[1], [2], [3]]))
        >>> f = ShowerFile(path)
        >>> len(f), f.read(1, 3).showers.shape
        (3, (2, 4))
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open_h5(self.path) as h5:
            for key in ("showers", "incident_energies"):
                if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                    raise CaloforgeError(
                        f"{self.path} has no {key!r} dataset; a shower file needs "
                        "'incident_energies' (N, 1) and 'showers' (N, cells)"
                    )
            showers, energies = h5["showers"], h5["incident_energies"]
            if showers.ndim != 2:
                raise CaloforgeError(
                    f"{self.path}: 'showers' must be 2-D (events, cells), got shape "
                    f"{showers.shape}; convert other layouts with `caloforge convert`"
                )
            if energies.ndim not in (1, 2) or (energies.ndim == 2 and energies.shape[1] != 1):
                raise CaloforgeError(
                    f"{self.path}: 'incident_energies' must have shape (N, 1), got {energies.shape}"
                )
            self.attrs: dict[str, Any] = {k: _plain(v) for k, v in h5.attrs.items()}
            committed = int(self.attrs.get("n_committed", len(showers)))
            self.n_cells = int(showers.shape[1])
            if "conditions" in h5:
                names = _plain(h5["conditions"].attrs.get("names", ""))
                self.condition_names = tuple(n for n in str(names).split(",") if n)
                if h5["conditions"].ndim != 2 or h5["conditions"].shape[1] != len(
                    self.condition_names
                ):
                    raise CaloforgeError(
                        f"{self.path}: 'conditions' has shape {h5['conditions'].shape} but "
                        f"names {self.condition_names}"
                    )
                lengths = {len(showers), len(energies), len(h5["conditions"])}
            else:
                self.condition_names = ("energy",)
                lengths = {len(showers), len(energies)}
            if min(lengths) < committed or (committed == len(showers) and len(lengths) > 1):
                raise CaloforgeError(
                    f"{self.path}: datasets disagree on the number of events "
                    f"(showers {len(showers)}, incident_energies {len(energies)}, "
                    f"n_committed {committed})"
                )
            self.extra_names = tuple(h5["extra"].keys()) if "extra" in h5 else ()
        self.n_events = committed

    def __len__(self) -> int:
        return self.n_events

    def __repr__(self) -> str:
        return f"ShowerFile({str(self.path)!r}, events={self.n_events}, cells={self.n_cells})"

    @property
    def header(self) -> dict[str, Any]:
        """The file attributes a derived file starts from: all but the writer's counters."""
        return {k: v for k, v in self.attrs.items() if k not in ("n_committed", "n_planned")}

    @property
    def n_planned(self) -> int:
        """Events the writer set out to write (equal to len() for a complete file)."""
        return int(self.attrs.get("n_planned", self.n_events))

    @property
    def complete(self) -> bool:
        return self.n_events >= self.n_planned and not self.path.name.endswith(PARTIAL)

    @property
    def energy_unit(self) -> EnergyUnit | None:
        """The unit of the cell energies, or None for a foreign file that does not say.

        caloforge files written before the unit was recorded hold visible MeV.
        """
        kind = self.attrs.get("energy_unit")
        if kind is None:
            return EnergyUnit() if "caloforge_version" in self.attrs else None
        if kind not in (VISIBLE, CALIBRATED):
            raise CaloforgeError(
                f"{self.path} states an unknown energy unit {kind!r}; expected {VISIBLE!r} "
                f"or {CALIBRATED!r}"
            )
        fraction = self.attrs.get("sampling_fraction")
        if fraction is not None:
            try:
                fraction = float(fraction)
            except (TypeError, ValueError):
                fraction = math.nan
            if not 0 < fraction <= 1:
                raise CaloforgeError(
                    f"{self.path} states a sampling fraction of {self.attrs['sampling_fraction']!r}"
                    "; a sampling fraction lies in (0, 1]"
                )
        return EnergyUnit(kind, fraction)

    @property
    def detector_yaml(self) -> str | None:
        return self.attrs.get("detector") or None

    @property
    def detector(self):
        """The file's Detector, or None for a file that does not carry one."""
        from caloforge.detectors import detector_from_yaml

        text = self.detector_yaml
        if text is None:
            return None
        detector = detector_from_yaml(text, origin=f"detector in {self.path}")
        if detector.n_cells != self.n_cells:
            raise CaloforgeError(
                f"{self.path} has {self.n_cells} cells per shower, but the detector it records "
                f"({detector.name}) has {detector.n_cells}"
            )
        return detector

    @property
    def source(self):
        """The file's Source, or None."""
        from caloforge.sources import source_from_yaml

        text = self.attrs.get("source")
        return source_from_yaml(text, origin=f"source in {self.path}") if text else None

    @property
    def producer(self) -> dict[str, Any]:
        text = self.attrs.get("producer")
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return {"description": str(text)}

    @property
    def seed(self) -> int | None:
        seed = self.attrs.get("seed")
        return None if seed is None else int(seed)

    def read(self, start: int = 0, stop: int | None = None, *, check: bool = True) -> ShowerBatch:
        """Events ``start`` to ``stop`` (exclusive; None = to the end).

        With ``check`` (the default), NaN or infinite energies raise and negative ones are
        clipped with a warning (see ``check_energies``).
        """
        stop = self.n_events if stop is None else min(stop, self.n_events)
        start = max(0, min(start, stop))
        with open_h5(self.path) as h5:
            showers = np.asarray(h5["showers"][start:stop], dtype=np.float32)
            energies = np.asarray(h5["incident_energies"][start:stop], dtype=np.float64)
            if "conditions" in h5:
                conditions = np.asarray(h5["conditions"][start:stop], dtype=np.float64)
            else:
                conditions = energies.reshape(-1, 1)
            extras = {name: np.asarray(h5["extra"][name][start:stop]) for name in self.extra_names}
        if check:
            showers = check_energies(showers, str(self.path), start)
            if not np.isfinite(energies).all() or not np.isfinite(conditions).all():
                raise CaloforgeError(
                    f"{self.path} has NaN or infinite incident energies or conditions"
                )
        return ShowerBatch(showers, energies, conditions, extras)

    def read_conditions(self) -> np.ndarray:
        """Every event's conditions (N, k), without the showers."""
        with open_h5(self.path) as h5:
            if "conditions" in h5:
                return np.asarray(h5["conditions"][: self.n_events], dtype=np.float64)
            return np.asarray(h5["incident_energies"][: self.n_events], dtype=np.float64)

    def iter_batches(self, batch_size: int, *, check: bool = True) -> Iterator[ShowerBatch]:
        """Stream the file in batches of ``batch_size`` events (the last may be smaller)."""
        if batch_size <= 0:
            raise CaloforgeError(f"batch size must be positive, got {batch_size}")
        for start in range(0, self.n_events, batch_size):
            yield self.read(start, start + batch_size, check=check)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class ShowerWriter:
    """Appends batches to a shower file, crash-safe (see the module docstring).

    Use ``create`` for a new file and ``resume`` to continue an interrupted one; leaving the
    ``with`` block normally after every planned event renames the file to its final name.
    """

    def __init__(self, h5: h5py.File, final: Path, n_planned: int | None):
        self._h5 = h5
        self.final = final
        self.n_planned = n_planned
        self._columns = {
            name: h5[name]
            for name in (
                "showers",
                "incident_energies",
                "conditions",
                *(f"extra/{n}" for n in h5.get("extra", {})),
            )
        }
        self._committed = int(h5.attrs["n_committed"])

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        n_cells: int,
        condition_names: tuple[str, ...],
        attrs: Mapping[str, Any] | None = None,
        extra_names: tuple[str, ...] = (),
        n_planned: int | None = None,
        overwrite: bool = False,
    ) -> ShowerWriter:
        """Start a new file at ``path`` (written as ``path.partial`` until complete).

        Arguments:
            path: final file name.
            n_cells: cells per shower.
            condition_names: names of the condition columns.
            attrs: file attributes (detector YAML, source YAML, producer JSON, seed, ...).
                Without ``energy_unit``, the file states that it holds visible MeV.
            extra_names: per-event scalar datasets stored under ``extra/``.
            n_planned: events the file will hold; None means "whatever is appended".
            overwrite: replace an existing file (and its partial) instead of refusing.
        """
        from caloforge import __version__

        final, partial = Path(path), partial_path(path)
        for existing in (final, partial):
            if existing.exists() and not overwrite:
                raise CaloforgeError(
                    f"{existing} exists; use --overwrite to replace it or --resume to continue it"
                )
        if not final.parent.is_dir():
            raise CaloforgeError(f"output folder {final.parent} does not exist")
        final.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        rows = max(1, _CHUNK_BYTES // (4 * n_cells))
        h5 = h5py.File(partial, "w", track_order=False)
        common = dict(compression="gzip", compression_opts=4, shuffle=True, track_times=False)
        h5.create_dataset(
            "showers",
            (0, n_cells),
            np.float32,
            maxshape=(None, n_cells),
            chunks=(rows, n_cells),
            **common,
        )
        h5.create_dataset(
            "incident_energies", (0, 1), np.float64, maxshape=(None, 1), chunks=(_ROWS, 1), **common
        )
        k = len(condition_names)
        cond = h5.create_dataset(
            "conditions",
            (0, k),
            np.float64,
            maxshape=(None, k),
            chunks=(_ROWS, max(k, 1)),
            **common,
        )
        cond.attrs["names"] = ",".join(condition_names)
        for name in extra_names:
            h5.create_dataset(
                f"extra/{name}", (0,), np.float64, maxshape=(None,), chunks=(_ROWS,), **common
            )
        h5.attrs["caloforge_version"] = __version__
        for key, value in {**EnergyUnit().attrs(), **(attrs or {})}.items():
            if value is not None:
                h5.attrs[key] = value
        h5.attrs["n_committed"] = 0
        h5.attrs["n_planned"] = -1 if n_planned is None else n_planned
        h5.flush()
        return cls(h5, final, n_planned)

    @classmethod
    def resume(cls, path: str | Path, n_planned: int | None = None) -> ShowerWriter:
        """Reopen an interrupted file (or extend a complete one) to append after its last
        committed event; rows past it, from an append that was cut off, are dropped."""
        final, partial = Path(path), partial_path(path)
        if not partial.exists():
            if not final.exists():
                raise CaloforgeError(f"nothing to resume: neither {final} nor {partial} exists")
            os.replace(final, partial)
        try:
            h5 = h5py.File(partial, "r+")
            committed = int(h5.attrs["n_committed"])
            names = ["showers", "incident_energies", "conditions"]
            names += [f"extra/{n}" for n in h5.get("extra", {})]
            for name in names:
                if h5[name].shape[0] < committed:
                    raise KeyError(name)
                h5[name].resize(committed, axis=0)
        except (OSError, KeyError, ValueError):
            raise CaloforgeError(
                f"{partial} is corrupted and cannot be resumed; delete it or rerun with --overwrite"
            ) from None
        if n_planned is not None:
            h5.attrs["n_planned"] = n_planned
        planned = int(h5.attrs["n_planned"])
        return cls(h5, final, None if planned < 0 else planned)

    def __enter__(self) -> ShowerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(finish=exc_type is None)

    @property
    def attrs(self) -> h5py.AttributeManager:
        return self._h5.attrs

    @property
    def n_committed(self) -> int:
        return self._committed

    @property
    def n_cells(self) -> int:
        return int(self._columns["showers"].shape[1])

    def append(self, batch: ShowerBatch) -> None:
        """Write ``batch`` after the committed events and commit it."""
        h5 = self._h5
        if batch.showers.shape[1] != self.n_cells:
            raise CaloforgeError(
                f"showers have {batch.showers.shape[1]} cells but the file has {self.n_cells}"
            )
        if batch.conditions.shape[1] != self._columns["conditions"].shape[1]:
            raise CaloforgeError(
                f"{batch.conditions.shape[1]} conditions given but the file has "
                f"{self._columns['conditions'].shape[1]}"
            )
        if not np.isfinite(batch.showers).all():
            raise CaloforgeError("refusing to write showers with NaN or infinite energies")
        extra_names = {name.removeprefix("extra/") for name in self._columns if "/" in name}
        if set(batch.extras) != extra_names:
            raise CaloforgeError(f"extras {sorted(batch.extras)} != file's {sorted(extra_names)}")
        start, stop = self._committed, self._committed + len(batch)
        values = {
            "showers": batch.showers.astype(np.float32, copy=False),
            "incident_energies": batch.incident_energies,
            "conditions": batch.conditions,
            **{f"extra/{k}": v for k, v in batch.extras.items()},
        }
        done = f"{start} events committed; --resume continues once there is space"
        self._reserve(sum(np.asarray(v).nbytes for v in values.values()), done)
        try:
            for name, column in self._columns.items():
                column.resize(stop, axis=0)
                column[start:stop] = values[name]
            h5.flush()
            h5.attrs["n_committed"] = stop
            h5.flush()
        except (OSError, RuntimeError) as exc:  # a full disk (HDF5 says so as either)
            if isinstance(exc, RuntimeError) and "errno" not in str(exc):
                raise
            raise write_error(h5.filename, exc, done) from None
        self._committed = stop

    def _reserve(self, nbytes: int, done: str) -> None:
        """Claim the disk space an append of ``nbytes`` needs before HDF5 writes any of it.

        A write HDF5 starts and cannot finish (a full disk, a quota) leaves a file it cannot open
        again, committed events and all; a failed reservation leaves the file as it was.
        """
        path = self._h5.filename
        need = nbytes + nbytes // 8 + (1 << 16)  # chunk and metadata overhead
        fd = os.open(path, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, self._h5.id.get_filesize(), need)
        except OSError as exc:
            raise write_error(path, exc, done) from None
        finally:
            os.close(fd)

    def close(self, finish: bool = True) -> Path:
        """Close the file; rename it to its final name if ``finish`` and it is complete.

        Returns the path the file now has.
        """
        if not self._h5.id.valid:
            return self.final
        committed = self.n_committed
        if self.n_planned is None:
            self._h5.attrs["n_planned"] = committed
        partial = Path(self._h5.filename)
        try:
            self._h5.close()
        except (OSError, RuntimeError):  # its last flush failed (a full disk): what was
            return partial  # committed stays
        if finish and (self.n_planned is None or committed >= self.n_planned):
            os.replace(partial, self.final)
            return self.final
        return partial


def refuse_same_file(src: str | Path, out: str | Path) -> None:
    """A one-line error if ``out`` is the file ``src``: writing it would destroy what is read."""
    src, out = Path(src), Path(out)
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise CaloforgeError(f"the output {out} is the input file; choose another name")


def copy_events(
    src: str | Path,
    out: str | Path,
    *,
    n: int | None = None,
    leave_out: Mapping[str, Sequence[float]] | None = None,
    overwrite: bool = False,
    batch_size: int = 5000,
) -> Path:
    """A new file with the attributes of ``src`` and its first ``n`` events (None: all), less
    those whose condition ``name`` is one of ``values`` (to a relative 10⁻⁶) for each entry of
    ``leave_out``: the training set of an interpolation test. What was left out is recorded in
    the attribute ``selection``; a condition the file lacks, or a value no event has, is an
    error, found before anything is written."""
    refuse_same_file(src, out)
    f = ShowerFile(src)
    stop = len(f) if n is None else min(n, len(f))
    within = f"{f.path}" if stop == len(f) else f"the first {stop} events of {f.path}"
    keep = np.ones(stop, bool)
    selection = [str(f.attrs["selection"])] if f.attrs.get("selection") else []
    if leave_out:
        conditions = f.read_conditions()[:stop]
        for name, values in leave_out.items():
            if name not in f.condition_names:
                raise CaloforgeError(
                    f"{f.path} has no condition {name!r} (it has {', '.join(f.condition_names)})"
                )
            column = conditions[:, f.condition_names.index(name)]
            for value in values:
                hit = np.isclose(column, value, rtol=1e-6, atol=0)
                if not hit.any():
                    raise CaloforgeError(f"no event of {within} has {name} = {value:g}")
                keep &= ~hit
            selection.append(f"{name} not in {', '.join(f'{v:g}' for v in values)}")
        if not keep.any():
            raise CaloforgeError(f"leaving out {'; '.join(selection)} leaves no event of {within}")
    attrs = f.header | ({"selection": "; ".join(selection)} if selection else {})
    with ShowerWriter.create(
        out,
        n_cells=f.n_cells,
        condition_names=f.condition_names,
        attrs=attrs,
        extra_names=f.extra_names,
        n_planned=int(keep.sum()),
        overwrite=overwrite,
    ) as writer:
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, stop)
            rows = np.flatnonzero(keep[start:end])
            if len(rows):
                writer.append(_rows(f.read(start, end), rows))
    return writer.final


def _rows(batch: ShowerBatch, rows: np.ndarray) -> ShowerBatch:
    """The given events of a batch."""
    return ShowerBatch(
        batch.showers[rows],
        batch.incident_energies[rows],
        batch.conditions[rows],
        {name: values[rows] for name, values in batch.extras.items()},
    )
