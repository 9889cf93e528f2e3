"""The ``caloforge`` command line: one typer app, each command a thin shell over the library.

Errors a user can cause, click's own among them (a word for a number, a missing option), end in
one line on stderr and exit status 1; Ctrl-C ends long work with what was done kept and exit
status 130, and a batch system's SIGTERM or SIGUSR1 with exit status 75 (``stopping.REQUEUE``).
Heavy libraries load inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from typer.exceptions import TyperException

from caloforge.demo import DEMO_MODEL
from caloforge.errors import CaloforgeError, InvalidArgument, argument, invalid_value

app = typer.Typer(
    name="caloforge",
    help="Fast calorimeter simulation: Geant4 showers, generative models, fidelity metrics.",
    pretty_exceptions_enable=False,
    add_completion=False,
)
detectors_app = typer.Typer(help="List and describe detectors.", invoke_without_command=True)
geant4_app = typer.Typer(help="Geant4 data tables and checks.")
models_app = typer.Typer(
    help="List the model families and the pretrained models.", invoke_without_command=True
)
app.add_typer(detectors_app, name="detectors")
app.add_typer(models_app, name="models")
app.add_typer(geant4_app, name="geant4")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed, recorded in the output.")]


@app.callback(invoke_without_command=True)
@geant4_app.callback(invoke_without_command=True)
def _help_without_command(ctx: typer.Context) -> None:
    # In place of typer's no_args_is_help, which is an error in the non-standalone mode of main.
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help(), highlight=False)


_ARGV: list[str] = []
"""The arguments of this invocation (``train --nproc`` runs them again under torchrun)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and an exit status."""
    from caloforge.data.showerfile import CaloforgeWarning

    def show(message, category, *args, **kwargs):
        if issubclass(category, CaloforgeWarning):
            err.print(f"[yellow]warning:[/] {message}", highlight=False)
        else:
            previous(message, category, *args, **kwargs)

    previous = warnings.showwarning
    warnings.showwarning = show
    _ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        # Not standalone: click's own errors (a word for a number, a missing option) come here
        # as exceptions, to be said in one line rather than in its usage box with status 2.
        code = app(args=argv, prog_name="caloforge", standalone_mode=False)
    except TyperException as exc:  # click's own, vendored by typer
        _fail(exc.format_message())
    except InvalidArgument as exc:  # named by the library's parameter: say the flag
        _fail(f"{_FLAGS.get(exc.parameter) or _flag(exc.parameter)}: {exc.message}")
    except CaloforgeError as exc:  # Stopped by a batch system's signal: REQUEUE
        _fail(str(exc), getattr(exc, "exit_status", 1))
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted", highlight=False)
        sys.exit(130)
    finally:
        warnings.showwarning = previous
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str, status: int = 1) -> None:
    """One line on stderr (none for an empty message: said already), exit ``status``. Of the
    ranks of a data-parallel run stopped on request, rank 0 alone says so."""
    quiet = not message or (status != 1 and os.environ.get("RANK", "0") != "0")
    if not quiet:
        line = escape(" ".join(message.split()))  # a message's [brackets] are not markup
        err.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)
    sys.exit(status)


@contextmanager
def _progress(description: str, unit: str):
    """A rich progress bar, shown from the first update on (so that errors come alone).

    Where stderr is not a terminal (a batch job's log, ``nohup``), a plain line every
    ``_LOG_EVERY_S`` seconds and at the end stands in for the bar. Yields a callback
    ``update(done, total)``.
    """
    if not err.is_terminal:
        yield _progress_lines(description, unit)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class Rate(TextColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return "" if speed is None else f"{speed:,.1f} {unit}/s"

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(""),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    )
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            # Speed is measured from here: start from what was already done (a resumed run).
            task = bar.add_task(description, total=total, completed=done)
        else:
            bar.update(task, total=total, completed=done)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


_LOG_EVERY_S = 30.0


def _progress_lines(description: str, unit: str):
    """``update(done, total)`` that prints ``description: done/total, rate, ETA`` lines.

    The rate is that of the last interval, so that a run's phases (a fast pretraining, say)
    do not skew the ETA.
    """
    last: tuple[int, float] | None = None

    def update(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if last is not None and now - last[1] < _LOG_EVERY_S and done < total:
            return
        line = f"{description}: {done}/{total} {unit}"
        if last is not None and now > last[1]:
            rate = (done - last[0]) / (now - last[1])
            line += f", {rate:,.1f} {unit}/s"
            if rate > 0 and done < total:
                line += f", ETA {(total - done) / rate / 60:.1f} min"
        err.print(line, highlight=False)
        last = (done, now)

    return update


# ---------------------------------------------------------------------------------- detectors


@detectors_app.callback()
def detectors(ctx: typer.Context) -> None:
    """List the built-in detectors with their cell count and depth."""
    if ctx.invoked_subcommand is not None:
        return
    from caloforge.detectors import builtin_detectors, load_detector

    table = Table("name", "cells", "depth [mm]", "depth [X0]", "R_M [mm]", "what")
    for name in builtin_detectors():
        det = load_detector(name)
        table.add_row(
            name,
            str(det.n_cells),
            f"{det.depth:.1f}",
            f"{det.depth_x0:.1f}",
            f"{det.mixture.moliere_radius:.1f}",
            det.title,
        )
    out.print(table)


@detectors_app.command("show")
def detectors_show(
    name: Annotated[str, typer.Argument(help="Built-in name or YAML path.")],
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print its YAML: a start for a detector of your own.")
    ] = False,
) -> None:
    """Print a detector's full description and derived quantities."""
    from caloforge.detectors import load_detector

    det = load_detector(name)
    if as_yaml:
        print(det.to_yaml(), end="")
        return
    out.print(f"[bold]{det.name}[/]: {det.title}\n\n{det.description}\n")
    out.print(f"[bold]approximates:[/] {det.approximates}\n", highlight=False)
    out.print(f"transverse size {det.size[0]:g} x {det.size[1]:g} mm, world {det.world_material}")
    out.print(f"cells {det.n_cells}, depth {det.depth:.1f} mm = {det.depth_x0:.2f} X0")
    if det.mixture is not None:
        m = det.mixture
        out.print(
            f"sampling mixture: X0 {m.x0:.2f} mm, Molière radius {m.moliere_radius:.2f} mm, "
            f"critical energy {m.critical_energy:.2f} MeV"
        )
    out.print(f"cell order: {det.cell_order}\n")
    depths = det.layer_depths()
    table = Table("layer", "slices", "repeat", "readout", "cells", "z [mm]", "t [X0]")
    for i, layer in enumerate(det.readout_layers):
        slices = " + ".join(
            f"{s.thickness:g} mm {s.material.removeprefix('G4_')}{'*' if s.active else ''}"
            for s in layer.slices
        )
        r = layer.readout
        if r.binning == "cartesian":
            binning = f"{r.nx} x {r.ny} of {r.dx:g} x {r.dy:g} mm"
        else:
            binning = f"{len(r.r_edges) - 1} r to {r.r_edges[-1]:g} mm x {r.n_alpha} alpha"
        table.add_row(
            layer.name,
            slices or "-",
            str(layer.repeat),
            binning,
            str(layer.n_cells),
            f"{depths['z_front'][i]:.1f}-{depths['z_back'][i]:.1f}",
            f"{depths['t_front'][i]:.2f}-{depths['t_back'][i]:.2f}",
        )
    out.print(table)
    out.print("* active material")


@app.command("sources")
def sources() -> None:
    """List the built-in particle sources (presets) and their conditions."""
    from caloforge.sources import builtin_sources, load_source

    table = Table("name", "particles", "energy [GeV]", "conditions", "what")
    for name in builtin_sources():
        src = load_source(name)
        lo, hi = src.energy_range
        table.add_row(
            name,
            ", ".join(src.particles),
            f"{lo / 1e3:g}-{hi / 1e3:g}",
            ", ".join(src.conditions),
            src.title,
        )
    out.print(table)


# ---------------------------------------------------------------------------------- files


@app.command("info")
def info(file: Annotated[Path, typer.Argument(help="A shower file.")]) -> None:
    """Describe a shower file: events, cells, conditions, detector, producer, seed, unit."""
    import numpy as np

    from caloforge.data.showerfile import ShowerFile

    f = ShowerFile(file)
    status = "complete" if f.complete else f"INCOMPLETE ({len(f)}/{f.n_planned}; --resume)"
    out.print(f"[bold]{f.path}[/]: {len(f)} events x {f.n_cells} cells, {status}")
    det = f.detector
    out.print(f"detector: {det.name if det else '(none recorded)'}")
    source = f.source
    out.print(f"source: {source.name if source else '(none recorded)'}")
    out.print(f"producer: {f.producer or '(none recorded)'}", highlight=False)
    out.print(f"seed: {f.seed}, caloforge {f.attrs.get('caloforge_version', '-')}")
    out.print(f"cell energies: {f.energy_unit or '(unit not stated)'}")
    if f.extra_names:
        out.print(f"extras: {', '.join(f.extra_names)}")
    if len(f):
        batch = f.read(0, min(len(f), 10_000))
        table = Table("quantity", "min", "mean", "max")
        for name, values in [
            ("incident energy [MeV]", batch.incident_energies[:, 0]),
            *zip(f.condition_names, batch.conditions.T),
            ("E_tot [MeV]", batch.showers.sum(axis=1)),
            ("non-zero cells", (batch.showers > 0).sum(axis=1)),
        ]:
            table.add_row(
                name, f"{np.min(values):.4g}", f"{np.mean(values):.4g}", f"{np.max(values):.4g}"
            )
        out.print(table)
        if len(batch) < len(f):
            out.print(f"(statistics of the first {len(batch)} events)")


@app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="Shower file to read.")],
    dst: Annotated[Path, typer.Argument(help="Shower file to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--from", help="Read a foreign file: calochallenge, calogan, lhcb-npz, 3dgan."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Write a caloforge file in a foreign format: calochallenge."),
    ] = None,
    binning: Annotated[
        Path | None, typer.Option(help="CaloChallenge binning XML for the cell geometry.")
    ] = None,
    energy_scale: Annotated[
        float | None,
        typer.Option(
            help="--from: visible MeV per unit of the file's cells (default: the format's, "
            "caloforge's units)."
        ),
    ] = None,
    sampling_fraction: Annotated[
        float | None,
        typer.Option(help="--to calochallenge: divide cells by this (default: the detector's)."),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Convert a foreign file into a caloforge file (--from), or a caloforge file into a
    CaloChallenge file (--to calochallenge)."""
    from caloforge.data.formats import convert as run_convert
    from caloforge.data.formats import to_calochallenge
    from caloforge.data.showerfile import ShowerFile

    if (fmt is None) == (to is None):
        raise CaloforgeError("give exactly one of --from FORMAT and --to calochallenge")
    if to is not None:
        if to != "calochallenge":
            raise CaloforgeError(f"unknown output format {to!r}; --to takes calochallenge")
        if binning is not None or energy_scale is not None:
            raise CaloforgeError("--binning and --energy-scale apply to --from, not --to")
        path = to_calochallenge(src, dst, sampling_fraction=sampling_fraction, overwrite=overwrite)
    else:
        if sampling_fraction is not None:
            raise CaloforgeError("--sampling-fraction applies to --to calochallenge")
        path = run_convert(
            src, dst, fmt, binning=binning, energy_scale=energy_scale, overwrite=overwrite
        )
    f = ShowerFile(path)
    out.print(f"wrote {path}: {len(f)} events x {f.n_cells} cells, {f.energy_unit}")


# ---------------------------------------------------------------------------------- geant4


@app.command("simulate")
def simulate(
    detector: Annotated[str, typer.Argument(help="Built-in detector name or YAML path.")],
    source: Annotated[str, typer.Option(help="Source preset name or YAML path.")],
    n: Annotated[int, typer.Option("--n", help="Events of the whole run (all shards).")],
    output: Annotated[Path, typer.Option("--out", help="Shower file to write.")],
    seed: Seed = 0,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    shard: Annotated[
        str | None, typer.Option(help="i/n: simulate the i-th (from 0) of n parts of the run.")
    ] = None,
    energy: Annotated[
        str | None, typer.Option(help="Fixed energy, e.g. 20GeV (inside the source's range).")
    ] = None,
    energy_range: Annotated[
        str | None, typer.Option(help="New energy range MIN:MAX, e.g. 10GeV:100GeV.")
    ] = None,
    physics: Annotated[
        str, typer.Option(help="emstandard, emstandard_opt1, or ftfp_bert (official data).")
    ] = "emstandard",
    cut: Annotated[float, typer.Option(help="Production cut, mm.")] = 0.7,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted file, or extend one to N.")
    ] = False,
    overwrite: Overwrite = False,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="MATERIAL:MM of dead material in front of the detector, e.g. G4_Al:178 "
            "(primaries start in front of it)."
        ),
    ] = None,
    fast: Annotated[
        str | None,
        typer.Option(
            help="Hybrid run: e+-/gamma entering the calorimeter are handed to this model "
            "(directory or pretrained name); the rest is Geant4."
        ),
    ] = None,
    fast_threshold: Annotated[
        str | None,
        typer.Option(
            help="Kinetic energy below which particles stay in Geant4 (default: the "
            "lowest energy the model was trained on), e.g. 1GeV."
        ),
    ] = None,
    fast_particles: Annotated[
        str, typer.Option(help="Particles the model takes, comma-separated.")
    ] = "e-,e+,gamma",
    fast_backend: Annotated[str, typer.Option(help="onnx or torch.")] = "onnx",
) -> None:
    """Simulate showers with Geant4 into a shower file (interrupt with Ctrl-C; --resume)."""
    from pydantic import ValidationError

    from caloforge.detectors import load_detector
    from caloforge.geant4.fast import fast_spec
    from caloforge.geant4.run import parse_shard
    from caloforge.geant4.run import simulate as run_simulate
    from caloforge.sources import load_source, parse_energy, with_energy

    with argument("detector"):
        det = load_detector(detector)
    if upstream is not None:
        material, sep, thickness = upstream.partition(":")
        try:
            det = det.with_upstream(material, float(thickness) if sep else float("nan"))
        except (ValueError, ValidationError):
            raise CaloforgeError(
                f"--upstream must look like MATERIAL:MM with a known material and a positive "
                f"thickness, got {upstream!r}"
            ) from None
    src = load_source(source)
    spec = None
    if fast is not None:
        spec = fast_spec(
            fast,
            det,
            threshold=None if fast_threshold is None else parse_energy(fast_threshold),
            particles=tuple(p.strip() for p in fast_particles.split(",") if p.strip()),
            backend=fast_backend,
        )
    if energy_range is not None:
        lo, sep, hi = energy_range.partition(":")
        if not sep:
            raise CaloforgeError(f"energy range must look like MIN:MAX, got {energy_range!r}")
        src = with_energy(src, energy_range=(parse_energy(lo), parse_energy(hi)))
    src = with_energy(src, energy=None if energy is None else parse_energy(energy))
    shard_spec = None if shard is None else parse_shard(shard)
    with _progress(f"simulate {det.name}", "events") as update:
        try:
            result = run_simulate(
                det,
                src,
                n,
                output,
                seed=seed,
                jobs=jobs,
                shard=shard_spec,
                physics=physics,
                cut_mm=cut,
                resume=resume,
                overwrite=overwrite,
                progress=update,
                fast=spec,
            )
        except KeyboardInterrupt:
            from caloforge.data.showerfile import ShowerFile, partial_path

            done = len(ShowerFile(partial_path(output))) if partial_path(output).exists() else 0
            err.print(
                f"interrupted: {done} events kept in {partial_path(output)}; "
                "rerun with --resume to continue"
            )
            raise typer.Exit(130) from None
    out.print(
        f"wrote {result.path}: {result.n_events} events ({result.n_new} new, "
        f"{result.events_per_second:.2f} events/s)"
    )
    if spec is not None:
        import json

        from caloforge.data.showerfile import ShowerFile

        written = ShowerFile(result.path)
        extras = written.read(check=False).extras
        fast_n, full_n = int(extras["fast_showers"].sum()), int(extras["full_showers"].sum())
        out.print(
            f"fast: {fast_n} showers from {spec.producer['name']}, {full_n} e+-/gamma above "
            f"{spec.threshold:g} MeV left to Geant4 (outside the training range: "
            f"{json.loads(written.attrs['fast_fallbacks'])})"
        )


@geant4_app.command("tables")
def geant4_tables(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the tables into.")],
    sources: Annotated[
        Path | None,
        typer.Option("--from", help="Evaluated data (nist-brems/, epdl97/); found if not given."),
    ] = None,
    all_elements: Annotated[
        bool, typer.Option("--all", help="Every element (Z 1-92), not only the built-ins' ones.")
    ] = False,
) -> None:
    """Build Geant4's EM tables (brem_SB, Livermore photo-effect and Rayleigh) from public data."""
    from caloforge.detectors import builtin_detectors, elements_of_detector, load_detector
    from caloforge.geant4.datasets import find_sources
    from caloforge.geant4.tables import build_tables

    elements = None
    if not all_elements:
        elements = set().union(
            *(elements_of_detector(load_detector(n)) for n in builtin_detectors())
        )
    manifest = build_tables(sources or find_sources(), out_dir, elements)
    out.print(f"wrote tables for {len(manifest.elements)} elements into {out_dir}")
    out.print(f"use them with GEANT4_DATA_DIR={out_dir}: {manifest.description}")


@geant4_app.command("check")
def geant4_check() -> None:
    """Check the EM tables with Geant4: attenuation in Pb against NIST XCOM, brems against NIST."""
    from caloforge.geant4.validation import check_tables

    result = check_tables()
    table = Table("quantity", "target", "E [MeV]", "Geant4", "reference", "unit", "diff", "ok")
    for c in result.comparisons:
        table.add_row(
            c.quantity,
            c.target,
            f"{c.energy_mev:g}",
            f"{c.geant4:.6g}",
            f"{c.reference:.6g}",
            c.unit,
            f"{100 * c.difference:+.3f}%",
            "yes" if c.passed else "[red]NO[/]",
        )
    out.print(table)
    out.print(f"data: {result.data}")
    if not result.passed:
        raise CaloforgeError("the EM tables failed the check (rows marked NO above)")
    out.print("all checks passed")


@app.command("merge")
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Shard files of one run.")],
    output: Annotated[Path, typer.Option("--out", help="Merged file.")],
    overwrite: Overwrite = False,
) -> None:
    """Join the shards of a simulation run into one file, in event order."""
    from caloforge.data.showerfile import ShowerFile
    from caloforge.geant4.run import merge as run_merge

    path = run_merge(inputs, output, overwrite=overwrite)
    out.print(f"wrote {path}: {len(ShowerFile(path))} events")


@app.command("select")
def select(
    source: Annotated[Path, typer.Argument(help="Shower file to copy from.")],
    output: Annotated[Path, typer.Option("--out", help="File to write.")],
    leave_out: Annotated[
        list[str] | None,
        typer.Option(
            help="CONDITION=V1,V2,...: leave out the events with these values (repeatable)."
        ),
    ] = None,
    n: Annotated[int | None, typer.Option(help="Take only the first N events.", min=1)] = None,
    overwrite: Overwrite = False,
) -> None:
    """Copy a shower file's events but those left out: the training set of an interpolation test
    (``--leave-out energy=8192,65536``). The copy records what it left out."""
    from caloforge.data.showerfile import ShowerFile, copy_events

    chosen: dict[str, list[float]] = {}
    for item in leave_out or []:
        name, sep, values = item.partition("=")
        try:
            chosen.setdefault(name, []).extend(float(v) for v in values.split(","))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise CaloforgeError(f"--leave-out must look like CONDITION=V1,V2, got {item!r}")
    path = copy_events(source, output, n=n, leave_out=chosen, overwrite=overwrite)
    out.print(f"wrote {path}: {len(ShowerFile(path))} of {len(ShowerFile(source))} events")


# ---------------------------------------------------------------------------------- models


def _flag(name: str) -> str:
    """The option of a setting called ``name``: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


_FLAGS = {
    "detector": "DETECTOR",
    "family": "FAMILY",
    "model": "MODEL",
    "model_name": "MODEL",
    "generated": "GENERATED",
    "reference": "REFERENCE",
    "inputs": "SHARDS",
    "n_events": "--n",
    "cut_mm": "--cut",
    "path": "--out",
    "out_dir": "--out",
    "backends": "--backend",
}
"""The library's parameters whose CLI flag or argument is not ``_flag`` of their name."""


def _options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs (values parsed as YAML: numbers, lists, booleans) into a dict."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CaloforgeError(f"model option must look like KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = yaml.safe_load(value)
    return options


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the model families and the pretrained models."""
    if ctx.invoked_subcommand is not None:
        return
    from caloforge.models import families, pretrained_models

    table = Table("family", "description")
    for name, description in families().items():
        table.add_row(name, description)
    out.print(table)
    out.print("pretrained: " + (", ".join(pretrained_models()) or "none"))


@models_app.command("show")
def models_show(family: Annotated[str, typer.Argument(help="A model family.")]) -> None:
    """List a family's options (``caloforge train -o KEY=VALUE``): type, default, what each does."""
    from caloforge.models import families, family_options

    options = family_options(family)
    out.print(f"[bold]{family}[/]: {families()[family]}\n", highlight=False)
    table = Table(Column("option", no_wrap=True), "type", "default", "what")
    for option in options:
        table.add_row(option.name, option.type, option.default, option.description)
    out.print(table)


@app.command("train")
def train(
    family: Annotated[str, typer.Argument(help="Model family (see `caloforge models`).")],
    data: Annotated[Path, typer.Option(help="Training shower file.")],
    output: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    steps: Annotated[
        int | None,
        typer.Option(help="Training steps (default 20000; with --resume, a new total)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Showers per batch.")] = 64,
    seed: Seed = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations.")] = 1000,
    max_time: Annotated[
        float | None, typer.Option(help="Stop after this many minutes (--resume continues).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Model hyperparameter KEY=VALUE (repeatable)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    overwrite: Overwrite = False,
    device: Annotated[
        str | None,
        typer.Option(
            help="Train on this torch device: cpu (default), cuda or cuda:N (with --resume: "
            "the one it was trained on)."
        ),
    ] = None,
    nproc: Annotated[
        int, typer.Option(help="Training processes on this machine (data-parallel, torchrun).")
    ] = 1,
    data_parts: Annotated[
        int | None,
        typer.Option(
            help="Parts the data is cut into (default: the number of processes); a run is the "
            "same with any number of processes dividing it, and resumes with any such number."
        ),
    ] = None,
    nnodes: Annotated[int, typer.Option(help="Machines taking part (each runs this).")] = 1,
    node_rank: Annotated[int, typer.Option(help="This machine's number, 0 to nnodes-1.")] = 0,
    master: Annotated[
        str | None, typer.Option(help="HOST:PORT of machine 0, where the ranks meet.")
    ] = None,
    rdzv_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the other machines.")
    ] = 300.0,
) -> None:
    """Train a generative model on a shower file (data-parallel with --nproc / --nnodes)."""
    from pydantic import ValidationError

    from caloforge.training.launch import launch, under_torchrun
    from caloforge.training.loop import TrainingSettings
    from caloforge.training.loop import train as run_train

    if (nproc != 1 or nnodes != 1) and not under_torchrun():
        from caloforge.data.showerfile import ShowerFile

        events = len(ShowerFile(data))
        if nproc * nnodes > events:
            raise CaloforgeError(
                f"{nproc * nnodes} processes for {data}'s {events} events: each process needs "
                "its own part of the data"
            )
        code = launch(_ARGV, nproc, nnodes, node_rank, master, rdzv_timeout)
        if code:
            raise typer.Exit(code)  # every rank stopped on request: REQUEUE
        return
    # On --resume the checkpoint's settings hold; only a new total of steps or a device may be
    # given.
    settings = None
    if not resume:
        try:
            settings = TrainingSettings(
                steps=20_000 if steps is None else steps,
                batch_size=batch_size,
                seed=seed,
                checkpoint_every=checkpoint_every,
                eval_every=eval_every,
                **({} if data_parts is None else {"data_parts": data_parts}),
            )
        except ValidationError as exc:
            raise invalid_value(exc, _flag) from None
    elif steps is not None and steps < 1:
        raise CaloforgeError(f"--steps: must be greater than 0, got {steps}")
    with _progress(f"train {family}", "steps") as update:
        result = run_train(
            family,
            data,
            output,
            settings=settings,
            model_options=_options(option or []),
            resume=resume,
            steps=steps if resume else None,
            device=device,
            overwrite=overwrite,
            max_time=None if max_time is None else 60 * max_time,
            progress=lambda step, total, _: update(step, total),
        )
    if os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports for all
    state = "done"
    if not result.complete:
        state = "stopped by --max-time, the best weights so far kept; continue with --resume"
    best = "-" if result.best_score is None else f"{result.best_score:.4f}"
    out.print(
        f"{result.directory}: step {result.step}/{result.steps} ({state}), "
        f"{result.seconds / 60:.1f} min, best held-out mean separation power {best}"
    )


@app.command("generate")
def generate(
    model: Annotated[str, typer.Argument(help="Model directory or pretrained model name.")],
    output: Annotated[Path, typer.Option("--out", help="Shower file to write.")],
    conditions_from: Annotated[
        Path | None, typer.Option(help="Take the conditions of this shower file.")
    ] = None,
    n: Annotated[int | None, typer.Option("--n", help="Showers to draw from --source.")] = None,
    source: Annotated[str | None, typer.Option(help="Source preset for --n.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Showers per batch (default: generate's, memory-bounded).")
    ] = None,
    seed: Seed = 0,
    backend: Annotated[str, typer.Option(help="torch or onnx.")] = "torch",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted file.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Generate showers with a trained model, in batches, into a shower file."""
    from caloforge.generation import generate as run_generate

    if (n is None) != (source is None):
        raise CaloforgeError("--n and --source go together")
    batch = {} if batch_size is None else {"batch_size": batch_size}
    with _progress("generate", "showers") as update:
        result = run_generate(
            model,
            output,
            conditions_from=conditions_from,
            n=n,
            source=source,
            **batch,
            seed=seed,
            backend=backend,
            resume=resume,
            overwrite=overwrite,
            progress=update,
        )
    out.print(f"wrote {result.path}: {result.n_events} showers in {result.seconds:.1f} s")


@app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="Model directory or pretrained model name.")],
    output: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write: model.onnx (ONNX Runtime) or model.pt2 (AOTInductor, libtorch "
            "and the C++ library in cpp/).",
        ),
    ],
) -> None:
    """Export a model's decode (noise and conditions to showers, dynamic batch) for C++ callers."""
    from caloforge.runtimes import export as export_model
    from caloforge.runtimes.onnx import metadata_path

    path = export_model(model, output)
    if path.suffix == ".onnx":
        out.print(f"wrote {path} and {metadata_path(path)}")
    else:
        out.print(f"wrote {path} (metadata inside, under caloforge.*)")


@app.command("bench")
def bench(
    model: Annotated[str, typer.Argument(help="Model directory or pretrained model name.")],
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            help="torch, torch-compile, onnx, aoti (repeatable; default: all but aoti, the "
            "AOTInductor package of the C++ library, which compiles for tens of seconds).",
        ),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Comma-separated batch sizes.")
    ] = "1,100,1000,10000",
    repeats: Annotated[int, typer.Option(help="Timed runs per point (median).")] = 3,
    vs_geant4: Annotated[
        bool, typer.Option("--vs-geant4", help="Also time Geant4 on the same conditions.")
    ] = False,
    geant4_events: Annotated[int, typer.Option(help="Geant4 showers to time.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time a model's sampling (showers/s, ms/shower) per backend and batch size."""
    import json

    from caloforge.timing import DEFAULT_BACKENDS
    from caloforge.timing import bench as run_bench

    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        raise CaloforgeError(f"batch sizes must be integers, got {batch_sizes!r}") from None
    result = run_bench(
        model,
        backends=backend or DEFAULT_BACKENDS,
        batch_sizes=sizes,
        repeats=repeats,
        vs_geant4=vs_geant4,
        geant4_events=geant4_events,
        stage=None if as_json else (lambda s: err.print(f"timing {s}", highlight=False)),
    )
    summary = result.summary()
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("backend", "batch", "ms/shower", "showers/s")
    for p in result.points:
        table.add_row(
            p.backend, str(p.batch_size), f"{p.ms_per_shower:.4f}", f"{p.showers_per_s:,.0f}"
        )
    out.print(table)
    out.print(f"torch threads: {result.threads}")
    for note in result.notes:
        out.print(f"note: {note}")
    if result.geant4_ms_per_shower is not None:
        out.print(
            f"Geant4: {result.geant4_ms_per_shower:.1f} ms/shower; model "
            f"({summary['backend']}, batch {summary['batch_size']}): "
            f"{summary['ms_per_shower']:.4f} ms/shower; speed-up {summary['speedup']:,.0f}x"
        )


@app.command("evaluate")
def evaluate(
    generated: Annotated[Path, typer.Argument(help="Generated shower file.")],
    reference: Annotated[Path, typer.Argument(help="Reference (Geant4) shower file.")],
    output: Annotated[Path, typer.Option("--out", help="Folder for metrics.json and report.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Cell threshold in visible MeV (default: the detector's)."),
    ] = None,
    seed: Seed = 0,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Small, fast classifier (weaker than CaloChallenge's)."),
    ] = False,
    protocol: Annotated[
        str,
        typer.Option(
            help="caloforge (the project's estimators) or calochallenge (its own, comparable "
            "with its published table)."
        ),
    ] = "caloforge",
    by: Annotated[
        str | None,
        typer.Option(
            help="A discrete condition (energy for the atlas source): every metric again for "
            "each of its values."
        ),
    ] = None,
    no_classifier: Annotated[
        bool, typer.Option("--no-classifier", help="Skip the classifier tests.")
    ] = False,
    max_events: Annotated[int | None, typer.Option(help="Use at most N events per file.")] = None,
    allow_condition_mismatch: Annotated[
        bool, typer.Option("--allow-condition-mismatch", help="Warn instead of refusing.")
    ] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Only metrics.json.")] = False,
) -> None:
    """Compare generated showers with reference showers: metrics.json, report.html, summary."""
    from caloforge.evaluation.evaluate import evaluate as run_evaluate
    from caloforge.evaluation.evaluate import write_metrics

    result = run_evaluate(
        generated,
        reference,
        threshold=threshold,
        seed=seed,
        quick=quick,
        classifier=not no_classifier,
        max_events=max_events,
        allow_condition_mismatch=allow_condition_mismatch,
        protocol=protocol,
        by=by,
        stage=lambda s: err.print(f"evaluate: {s}", highlight=False),
    )
    metrics_path = write_metrics(result, output)
    _print_summary(result.metrics)
    if "by" in result.metrics:
        from caloforge.evaluation.report import breakdown_rows

        header, *rows = breakdown_rows(result.metrics["by"])
        table = Table(*header, title=f"per value of {result.metrics['by']['condition']}")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    out.print(f"wrote {metrics_path}")
    if not no_report:
        from caloforge.evaluation.report import write_report

        out.print(f"wrote {write_report(result, output)}")


@app.command("demo")
def demo(
    output: Annotated[Path, typer.Option("--out", help="Folder for the demo's files.")] = Path(
        "caloforge-demo"
    ),
    model: Annotated[
        str, typer.Option(help="Pretrained lhcb-ecal model name or model directory.")
    ] = DEMO_MODEL,
    n_geant4: Annotated[int, typer.Option(help="Geant4 showers to simulate.")] = 300,
    n_timing: Annotated[int, typer.Option(help="Model showers to time.")] = 10_000,
    jobs: Annotated[int, typer.Option(help="Geant4 worker processes.")] = 2,
    seed: Seed = 0,
) -> None:
    """Simulate, generate, time and evaluate: the whole pipeline in a few minutes."""
    from caloforge.demo import demo as run_demo

    with _progress("Geant4", "showers") as update:
        result = run_demo(
            output,
            model=model,
            n_geant4=n_geant4,
            n_timing=n_timing,
            jobs=jobs,
            seed=seed,
            stage=lambda s: err.print(s, highlight=False),
            progress=update,
        )
    _print_summary(result.metrics)
    table = Table("speed", "ms/shower", title="speed (this machine)")
    table.add_row("Geant4 (one core, lhcb-ecal, LHCb source)", f"{result.geant4_ms_per_shower:.1f}")
    table.add_row(
        f"{model} ({result.model_backend}, batches of {result.model_batch})",
        f"{result.model_ms_per_shower:.4f}",
    )
    table.add_row("speed-up", f"{result.speedup:,.0f}x")
    out.print(table)
    out.print(f"report: {result.out / 'report.html'}")


def _print_summary(metrics: dict) -> None:
    from caloforge.evaluation.report import summary_rows

    table = Table("metric", "value", title="fidelity")
    for label, value in summary_rows(metrics):
        table.add_row(label, value)
    out.print(table)
    colours = {"floor": "green", "mild": "yellow", "between": "dark_orange", "beyond": "red"}
    for reading in (metrics.get("verdict") or {}).get("readings", []):
        dot = f"[{colours[reading['level']]}]●[/]"
        out.print(f"{dot} {escape(reading['sentence'])}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
