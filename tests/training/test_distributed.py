"""Data-parallel training under torchrun: the same run whatever the processes and machines.

Each test starts real torchrun processes (gloo, loopback) on tiny networks and data.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import TINY, option_args, write_atlas_like

LAST = "checkpoints/last.safetensors"
GAN = ("wgan-gp-atlas", option_args(TINY["wgan-gp-atlas"]))


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_atlas_like(tmp_path_factory.mktemp("ddp") / "atlas.h5", 600, seed=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(family, options, data, out, steps, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "caloforge",
        "train",
        family,
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "32",
        "--seed",
        "3",
        "--eval-every",
        "1000",
        "--checkpoint-every",
        "1000",
        *options,
        *extra,
    ]


def _train(*args) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(out: Path) -> dict[str, np.ndarray]:
    return {k: v for k, v in load_file(out / LAST).items() if k.startswith("model.")}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-6, err_msg=key)


def test_resumed_run_with_another_world_size_equals_an_uninterrupted_one(atlas, tmp_path):
    name, options = GAN
    _train(*_train_args(name, options, atlas, tmp_path / "whole", 6, "--nproc", "2"))
    _train(*_train_args(name, options, atlas, tmp_path / "cut", 3, "--nproc", "2"))
    resume = [
        sys.executable,
        "-m",
        "caloforge",
        "train",
        name,
        "--data",
        str(atlas),
        "--out",
        str(tmp_path / "cut"),
        "--resume",
        "--steps",
        "6",
    ]
    _train(*resume)  # one process now: the run's two data parts are both its own
    _assert_same(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    bad = subprocess.run(
        [*resume[:-2], "--steps", "8", "--nproc", "3"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "divides 2" in bad.stderr


def test_two_machines_on_loopback_train_as_one_job(atlas, tmp_path):
    name, options = GAN
    _train(*_train_args(name, options, atlas, tmp_path / "two", 4, "--nproc", "2"))
    master = f"127.0.0.1:{_free_port()}"
    nodes = [
        subprocess.Popen(
            _train_args(
                name,
                options,
                atlas,
                tmp_path / "nodes",
                4,
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--master",
                master,
                "--rdzv-timeout",
                "60",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    # The model directory is on storage both machines see (here the same disk); rank 0, on
    # node 0, wrote it, and it equals the one-machine run's.
    _assert_same(_weights(tmp_path / "two"), _weights(tmp_path / "nodes"))


def test_launch_errors_are_one_line(atlas, tmp_path, cli):
    out = str(tmp_path / "m")
    base = ["train", GAN[0], "--data", str(atlas), "--out", out, "--steps", "2"]
    cases = {
        "--nproc must be at least 1": ["--nproc", "0"],
        "processes for": ["--nproc", "700"],
        "cannot reach the rendezvous at 127.0.0.1": [
            "--nnodes",
            "2",
            "--node-rank",
            "1",
            "--master",
            f"127.0.0.1:{_free_port()}",
            "--rdzv-timeout",
            "2",
        ],
        "--master must look like HOST:PORT": ["--nnodes", "2", "--master", "nowhere"],
    }
    for words, extra in cases.items():
        code, _, err = cli(*base, *extra)
        assert code == 1 and words in err and err.strip().count("\n") == 0, err
