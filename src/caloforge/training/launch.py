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
import socket
import subprocess
import sys
import time

from caloforge.errors import CaloforgeError

__all__ = ["LAUNCH_OPTIONS", "launch", "parse_endpoint", "under_torchrun", "wait_for_endpoint"]

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
    return subprocess.call(command, env=environment)
