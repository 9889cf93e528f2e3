"""Running Geant4: worker processes, deterministic events, resume, shards and merge.

Event i of a run with seed s depends only on (s, i): its primary comes from
``sample_primaries(source, i, i + 1, s)`` and Geant4's engine is reseeded from (s, i) before the
event starts. A run therefore gives the same showers whatever the number of workers, the
chunking, an interruption and ``--resume``, or a split into shards that ``merge`` joins again.

Departure from Geant4's multi-threaded run manager, which reseeds each event with several seeds:
here one 63-bit seed (``event_seeds``). MixMax's several-seed path jumps its state ahead
(``seed_uniquestream``), some 30 µs an event, a quarter of a hybrid event's time; its one-seed
path (``seed_spbox``, what ``G4Random::setTheSeed`` does) takes under 1 µs.

Geant4 can build one run manager per process, so every run happens in worker processes started
with the "spawn" method; the parent samples nothing, runs no Geant4, and is the file's only
writer, appending results in event order as they complete.

Departure from multiprocessing's spawn: the workers do not import the caller's ``__main__``.
They run only caloforge's code, and re-running the caller's script in each of them would run
its ``simulate`` call again (Python's "bootstrapping phase" error); so a script needs no
``if __name__ == "__main__"`` guard, as in a notebook.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import context, popen_spawn_posix, spawn
from pathlib import Path

import numpy as np

from caloforge import stopping
from caloforge.data.showerfile import ShowerBatch, ShowerFile, ShowerWriter, partial_path
from caloforge.detectors import Detector, detector_from_yaml, elements_of_detector, load_detector
from caloforge.errors import CaloforgeError, InvalidArgument, argument, checked
from caloforge.files import locked
from caloforge.geant4.fast import FastSpec, fast_extras, record_fallback_totals
from caloforge.seeds import indexed, states
from caloforge.sources import (
    Source,
    load_source,
    sample_primaries,
    source_from_yaml,
    source_to_yaml,
)

__all__ = [
    "EXTRAS",
    "SimulationResult",
    "default_chunk",
    "event_seeds",
    "merge",
    "parse_shard",
    "shard_range",
    "simulate",
]

EXTRAS = ("energy_active", "energy_passive")
"""Per-event extras of a Geant4 file: energy deposited in all active material (inside and
outside the readout windows) and in all passive material, MeV."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), with shards numbered 0 to n-1.

    Example:
        >>> parse_shard("1/4")
        (1, 4)
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise CaloforgeError(f"shard must look like i/n (e.g. 0/4), got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= i < n:
        raise CaloforgeError(f"shard {text!r}: the index must be in 0..{max(n - 1, 0)} for n={n}")
    return i, n


def shard_range(n_events: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The global event range [first, last) of a shard of an ``n_events`` run."""
    if shard is None:
        return 0, n_events
    i, n = shard
    return i * n_events // n, (i + 1) * n_events // n


def event_seeds(seed: int, start: int, stop: int) -> list[int]:
    """Geant4's engine seed for each event from ``start`` to ``stop`` (exclusive): a positive
    63-bit integer, a function of (seed, event index) only."""
    keys = indexed(seed, 0x6734, np.arange(start, stop))
    return np.maximum(states(keys, 1, np.uint64)[:, 0] >> 1, 1).tolist()


@dataclass(frozen=True)
class SimulationResult:
    path: Path
    n_events: int
    n_new: int
    seconds: float
    complete: bool

    @property
    def events_per_second(self) -> float:
        return self.n_new / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class _RunSpec:
    """What a worker needs, in picklable form."""

    detector_yaml: str
    source_yaml: str
    seed: int
    physics: str
    cut_mm: float
    data: object
    fast: FastSpec | None = None


@checked
def simulate(
    detector: Detector | str | Path,
    source: Source | str | Path,
    n_events: int,
    out: str | Path,
    *,
    seed: int = 0,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    physics: str = "emstandard",
    cut_mm: float = 0.7,
    resume: bool = False,
    overwrite: bool = False,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    fast: FastSpec | None = None,
) -> SimulationResult:
    """Simulate ``n_events`` showers (or one shard of them) into a shower file.

    Arguments:
        detector: what to build: a Detector, a built-in name or a YAML path.
        source: primaries and the conditions to record: a Source, a preset name or a YAML path.
        n_events: events of the whole run (all shards together).
        out: output file; written as ``out.partial`` until complete.
        seed: run seed; event i depends only on (seed, i).
        jobs: worker processes.
        shard: (i, n) to simulate the i-th of n equal parts of the run.
        physics: "emstandard", "emstandard_opt1" or "ftfp_bert" (official data only).
        cut_mm: production cut.
        resume: continue an interrupted file, or extend a complete one to ``n_events``.
        overwrite: replace an existing file.
        chunk_size: events per worker task (progress granularity); chosen if None.
        progress: called with (events done, events planned) after each append.
        fast: hand e±/γ entering the calorimeter to a model (``caloforge.geant4.fast``).
    """
    from caloforge.geant4 import datasets
    from caloforge.geant4.physics import check_physics

    if n_events <= 0:
        raise InvalidArgument("n_events", f"must be positive, got {n_events}")
    if jobs <= 0:
        raise InvalidArgument("jobs", f"must be positive, got {jobs}")
    if not cut_mm > 0:
        raise InvalidArgument("cut_mm", f"the production cut must be positive, got {cut_mm} mm")
    if resume and overwrite:
        raise InvalidArgument("resume", "resume and overwrite exclude each other")
    if not isinstance(detector, Detector):
        with argument("detector"):
            detector = load_detector(detector)
    if not isinstance(source, Source):
        with argument("source"):
            source = load_source(source)
    if not detector.simulatable:
        raise CaloforgeError(
            f"detector {detector.name!r} describes a readout only (no materials); "
            "it cannot be simulated"
        )
    first, last = shard_range(n_events, shard)
    if last <= first:
        raise CaloforgeError(f"shard {shard[0]}/{shard[1]} of {n_events} events is empty")

    data = datasets.resolve_data(elements_of_detector(detector))
    check_physics(physics, data)
    spec = _RunSpec(
        detector_yaml=detector.to_yaml(),
        source_yaml=source_to_yaml(source),
        seed=seed,
        physics=physics,
        cut_mm=cut_mm,
        data=data,
        fast=fast,
    )
    producer = {
        "kind": "geant4" if fast is None else "geant4+model",
        "geant4": "11.4 (geant4-pybind 0.1.3)",
        "physics_list": physics,
        "production_cut_mm": cut_mm,
        "em_data": data.description,
    }
    if fast is not None:
        producer["fast"] = fast.describe()
    attrs = {
        "detector": spec.detector_yaml,
        "source": spec.source_yaml,
        "producer": json.dumps(producer),
        "seed": seed,
        "cell_order": detector.cell_order,
        "first_event": first,
        "n_events_run": n_events,
        "shard": "" if shard is None else f"{shard[0]}/{shard[1]}",
    }
    planned = last - first
    with locked(out, f"shower file {out}"):
        writer = _open_writer(
            out, detector, source, attrs, planned, resume, overwrite, fast_extras(fast)
        )
        done_before = writer.n_committed
        start_time = time.perf_counter()
        interrupted = True
        try:
            if progress is not None:
                progress(done_before, planned)
            with stopping.on_request():
                _run_workers(
                    spec, first + done_before, last, jobs, chunk_size, writer, planned, progress
                )
            interrupted = False
        except stopping.Stopped as exc:
            kept = f"{writer.n_committed} events kept in {partial_path(out)}"
            raise stopping.Stopped.keeping(exc.signum, kept) from None
        finally:
            path = writer.close(finish=not interrupted)
            if fast is not None:
                record_fallback_totals(path)
        elapsed = time.perf_counter() - start_time
        done = ShowerFile(path).n_events
        return SimulationResult(path, done, done - done_before, elapsed, done >= planned)


def _open_writer(
    out,
    detector: Detector,
    source: Source,
    attrs: dict,
    planned: int,
    resume: bool,
    overwrite: bool,
    extra_names: tuple[str, ...] = (),
) -> ShowerWriter:
    out = Path(out)
    exists = out.exists() or partial_path(out).exists()
    if resume and exists:
        existing = ShowerFile(partial_path(out) if partial_path(out).exists() else out)
        for key in ("detector", "source", "producer", "seed", "first_event", "shard"):
            if str(existing.attrs.get(key)) != str(attrs[key]):
                raise CaloforgeError(
                    f"cannot resume {existing.path}: it was made with a different {key}"
                )
        if existing.n_events > planned:
            raise CaloforgeError(
                f"{existing.path} already holds {existing.n_events} events, more than {planned}"
            )
        writer = ShowerWriter.resume(out, n_planned=planned)
        writer.attrs["n_events_run"] = attrs["n_events_run"]
        return writer
    return ShowerWriter.create(
        out,
        n_cells=detector.n_cells,
        condition_names=source.conditions,
        attrs=attrs,
        extra_names=EXTRAS + extra_names,
        n_planned=planned,
        overwrite=overwrite,
    )


def _run_workers(
    spec: _RunSpec,
    start: int,
    stop: int,
    jobs: int,
    chunk_size: int | None,
    writer: ShowerWriter,
    planned: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    if start >= stop:
        return
    total = stop - start
    chunk = chunk_size or default_chunk(total, jobs, spec.fast is not None)
    ranges = [(a, min(a + chunk, stop)) for a in range(start, stop, chunk)]
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(ranges)),
        mp_context=_WorkerContext(),
        initializer=_worker_init,
        initargs=(spec,),
    )
    pending: dict[Future, tuple[int, int]] = {}
    ready: dict[int, ShowerBatch] = {}
    next_start = start
    queue = list(reversed(ranges))
    finished_all = False
    try:
        while queue or pending:
            while queue and len(pending) < 4 * jobs:
                a, b = queue.pop()
                pending[pool.submit(_worker_run, a, b)] = (a, b)
            finished, _ = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                a, _ = pending.pop(future)
                try:
                    ready[a] = future.result()
                except BrokenProcessPool:
                    if signum := stopping.requested():
                        raise stopping.Stopped("stopped", signum) from None
                    raise CaloforgeError(
                        "a Geant4 worker process died (killed, or out of memory); "
                        "the events before it are kept: rerun with --resume to continue"
                    ) from None
            while next_start in ready:
                batch = ready.pop(next_start)
                writer.append(batch)
                next_start += len(batch)
                if progress is not None:
                    progress(writer.n_committed, planned)
            if signum := stopping.requested():
                raise stopping.Stopped("stopped", signum)  # what is complete is committed
        finished_all = True
    finally:
        if not finished_all:
            # An error, Ctrl-C or SIGTERM: stop the workers now rather than let them finish
            # their chunks (they ignore SIGTERM, left to the parent: hence SIGKILL).
            for process in list((pool._processes or {}).values()):
                process.kill()
        # Always join the pool's manager thread here: left running, it races the interpreter's
        # exit hook, which then prints a traceback about a closed pipe.
        pool.shutdown(wait=True, cancel_futures=True)


def default_chunk(n_events: int, jobs: int, fast: bool) -> int:
    """Events per worker task: about eight per worker, at most 50 (a few seconds to a minute of
    Geant4), or 500 in a hybrid run, where an event takes a fraction of a millisecond and the
    model makes a chunk's showers in one batch."""
    return int(np.clip(n_events // (8 * jobs), 1, 500 if fast else 50))


_POLL_S = 0.2
"""How often the parent looks for a stop request while its workers run."""


class _PopenWithoutMain(popen_spawn_posix.Popen):
    """multiprocessing's spawn, leaving out the caller's ``__main__`` (module docstring)."""

    _lock = threading.Lock()

    def _launch(self, process_obj) -> None:
        # The only hook: the preparation data is read from ``spawn`` while the child starts.
        with self._lock:
            full = spawn.get_preparation_data

            def without_main(name: str) -> dict:
                data = full(name)
                data.pop("init_main_from_path", None)
                data.pop("init_main_from_name", None)
                return data

            spawn.get_preparation_data = without_main
            # The child is born with the stop signals blocked and unblocks them once it ignores
            # them (``_worker_init``): a batch system's SIGTERM to the whole job, arriving while
            # a worker still imports, must not kill it.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, stopping.SIGNALS)
            try:
                super()._launch(process_obj)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                spawn.get_preparation_data = full


class _WorkerProcess(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        return _PopenWithoutMain(process_obj)


class _WorkerContext(context.SpawnContext):
    Process = _WorkerProcess


_SPEC: _RunSpec | None = None
_APP = None


def _worker_init(spec: _RunSpec) -> None:
    # The parent handles Ctrl-C and a batch system's signals (sent to every process of a job);
    # Geant4's C++ event loop must not see KeyboardInterrupt.
    for signum in stopping.SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping.SIGNALS)  # blocked since its launch
    # Geant4's banner and run summaries go to stdout: keep the terminal for the progress bar.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    global _SPEC
    _SPEC = spec


def _worker_run(start: int, stop: int) -> ShowerBatch:
    global _APP
    source = _source(_SPEC.source_yaml)
    if _APP is None:
        from caloforge.geant4.app import Geant4App

        _APP = Geant4App(
            detector_from_yaml(_SPEC.detector_yaml),
            _SPEC.data,
            physics=_SPEC.physics,
            cut_mm=_SPEC.cut_mm,
            fast=_SPEC.fast,
            flight_mm=source.flight,
        )
    primaries = sample_primaries(source, start, stop, _SPEC.seed)
    seeds = event_seeds(_SPEC.seed, start, stop)
    showers, extras = _APP.run(primaries, seeds, start, _SPEC.seed)
    return ShowerBatch(showers, primaries.energy, primaries.conditions(source.conditions), extras)


@lru_cache(maxsize=1)
def _source(text: str) -> Source:
    return source_from_yaml(text)


@checked
def merge(inputs: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shards of one run, in event order, into one file.

    The shards must come from the same detector, source, producer and seed and together cover
    their run without gap or overlap; the result equals an unsharded run of the same events.
    """
    if not inputs:
        raise InvalidArgument("inputs", "merge needs at least one input file")
    files = sorted(
        (ShowerFile(p) for p in inputs), key=lambda f: int(f.attrs.get("first_event", 0))
    )
    head = files[0]
    for f in files:
        if not f.complete:
            raise CaloforgeError(f"{f.path} is incomplete; finish it with --resume before merging")
        for key in ("detector", "source", "producer", "seed", "n_events_run"):
            if str(f.attrs.get(key)) != str(head.attrs.get(key)):
                raise CaloforgeError(f"{f.path} differs from {head.path} in its {key}")
        if f.condition_names != head.condition_names or f.extra_names != head.extra_names:
            raise CaloforgeError(f"{f.path} has other conditions or extras than {head.path}")
    expected = int(head.attrs.get("first_event", 0))
    for f in files:
        first = int(f.attrs.get("first_event", 0))
        if first != expected:
            raise CaloforgeError(
                f"shards do not tile the run: expected one starting at event {expected}, "
                f"{f.path} starts at {first}"
            )
        expected = first + len(f)
    attrs = head.header | {"shard": ""}
    total = sum(len(f) for f in files)
    with ShowerWriter.create(
        out,
        n_cells=head.n_cells,
        condition_names=head.condition_names,
        attrs=attrs,
        extra_names=head.extra_names,
        n_planned=total,
        overwrite=overwrite,
    ) as writer:
        for f in files:
            for batch in f.iter_batches(10_000, check=False):
                writer.append(batch)
    if any(name.startswith("full_outside_") for name in head.extra_names):
        record_fallback_totals(Path(out))  # the shards' totals summed, not the first shard's
    return Path(out)
