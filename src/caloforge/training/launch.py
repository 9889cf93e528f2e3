"""Starting data-parallel training: ``caloforge train --nproc N`` runs itself under torchrun.

One machine: ``torchrun --standalone --nproc-per-node N -m caloforge train ...`` (the launcher's
own options removed). Several: every machine runs ``caloforge train ... --nproc N --nnodes M
--node-rank K --master HOST:PORT``, which is torchrun's static rendezvous: machine 0 holds the
store at HOST:PORT, the others connect to it, and ranks are numbered machine by machine, so a run's
data parts go to the same ranks every time. Running ``torchrun ... -m caloforge train ...``
directly works too (Slurm's ``srun torchrun``, Kubeflow's PyTorchJob: see ``deploy/``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from caloforge.errors import CaloforgeError
from caloforge.stopping import REQUEUE

__all__ = [
    "LAUNCH_OPTIONS",
    "LOST_RANKS",
    "launch",
    "parse_endpoint",
    "under_torchrun",
    "wait_for_endpoint",
]

LAUNCH_OPTIONS = ("--nproc", "--nnodes", "--node-rank", "--master", "--rdzv-timeout")
"""Options of ``caloforge train`` that are the launcher's, not passed on to the ranks."""


def under_torchrun() -> bool:
    """Whether this process is a rank that torchrun started."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CaloforgeError(f"--master must look like HOST:PORT, got {text!r}")
    return host, int(port)


def wait_for_endpoint(host: str, port: int, timeout_s: float) -> None:
    """Wait until something listens at host:port, or fail with one line after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise CaloforgeError(
                    f"cannot reach the rendezvous at {host}:{port} within {timeout_s:g} s; "
                    "is node 0 running, and is the address right?"
                ) from None
            time.sleep(0.5)


def _without_launch_options(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def launch(
    argv: list[str],
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master: str | None = None,
    timeout_s: float = 300.0,
) -> int:
    """Run ``caloforge`` with ``argv`` (its launch options dropped) as torchrun's ranks; returns
    torchrun's exit status."""
    if nproc < 1:
        raise CaloforgeError(f"--nproc must be at least 1, got {nproc}")
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise CaloforgeError(f"--node-rank must be in 0..{nnodes - 1} for --nnodes {nnodes}")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1:
        command.append("--standalone")
    else:
        if master is None:
            raise CaloforgeError("--nnodes above 1 needs --master HOST:PORT (node 0's address)")
        host, port = parse_endpoint(master)
        if node_rank > 0:
            wait_for_endpoint(host, port, timeout_s)
        command += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={host}",
            f"--master-port={port}",
            "--rdzv-backend=static",
            f"--rdzv-conf=timeout={int(timeout_s)}",
        ]
    command += ["-m", "caloforge", *_without_launch_options(argv)]
    environment = {"OMP_NUM_THREADS": "1", **os.environ}  # one core per rank unless told
    run = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True, bufsize=1)
    # A batch system's stop request to this process goes on to torchrun, which passes SIGTERM to
    # the ranks: they checkpoint and exit with REQUEUE. Ctrl-C reaches them as a process group.
    asked: list[int] = []

    def stop(signum, frame):
        asked.append(signum)
        run.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    captured: list[str] = []
    report = said = False
    for line in run.stderr:
        captured.append(line)
        if _TORCHRUN_FAILED.search(line) or line.startswith("Traceback"):
            report = True  # what follows is torchrun's report or its own traceback
        ours = line.startswith(("error:", "warning:")) and LOST_RANKS not in line
        if (report and not ours) or _TORCHRUN_LOG.match(line) or LOST_RANKS in line:
            continue  # torchrun's own lines, and what its report will say better
        said = said or ours
        sys.stderr.write(line)
    code = run.wait()
    if code == 0:
        return 0
    stopped = any(line.startswith("error: stopped by") for line in captured)
    if stopped and (asked or _all_requeued(captured)):
        return REQUEUE  # the ranks said "stopped by ..." with their checkpoint written
    if asked:
        sys.stderr.write(
            f"error: stopped by {signal.Signals(asked[0]).name}; continue with --resume\n"
        )
        return REQUEUE
    return _outcome(code, "".join(captured), said)


def _all_requeued(lines: list[str]) -> bool:
    codes = [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", "".join(lines))]
    return bool(codes) and all(c == REQUEUE for c in codes)


LOST_RANKS = "lost the other ranks"
"""What a rank says when a collective operation finds another rank gone."""

_TORCHRUN_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
"""torchrun's own log lines (glog format)."""
_TORCHRUN_FAILED = re.compile(r"failed \(exitcode: -?\d+\)")


def _outcome(code: int, report: str, said: bool) -> int:
    """torchrun's failed run in one line."""
    root = report.partition("Root Cause")[2]
    killed = re.search(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-\d+) \(pid: (\d+)\)", root)
    if said and not killed:
        raise CaloforgeError("")  # a rank's error is on the line above
    lost = re.search(rf"^error: (.*{LOST_RANKS}.*)$", report, re.M)
    if lost and not killed:  # another machine's rank went: this one's says so
        raise CaloforgeError(lost.group(1))
    fd, log = tempfile.mkstemp(prefix="caloforge-torchrun-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(report)
    if killed:
        rank, status, pid = killed.groups()
        how = signal.Signals(-int(status)).name
        raise CaloforgeError(
            f"training stopped: rank {rank} (pid {pid}) ended by {how} and the others were "
            f"stopped; continue from the last checkpoint with --resume (torchrun's report: {log})"
        )
    raise CaloforgeError(
        f"training stopped: torchrun exited with status {code} (its report: {log})"
    )
