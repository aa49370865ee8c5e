"""The training command, run as a user would: real MNIST, a few iterations, and bad options."""

import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet.train import main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastnet.train", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_cli_trains_reports_and_saves(mnist_dir, tmp_path, backend_name):
    model = tmp_path / "model.npz"
    done = run_cli("--backend", backend_name, "--iterations", "5", "--data-dir", str(mnist_dir),
                   "--save", str(model), "--no-progress", "--dtype", "float32")
    assert done.returncode == 0, done.stderr
    assert "dev accuracy" in done.stdout and "test accuracy" in done.stdout and "ms/step" in done.stdout
    net = fastnet.Network.load(model)
    assert net.sizes == (784, 10, 10) and net.dtype == np.float32


@pytest.mark.parametrize("args, message", [
    (["--iterations", "0"], "must be at least 1"),
    (["--iterations", "-3"], "must be at least 1"),
    (["--lr", "0"], "must be a finite number > 0"),
    (["--lr", "nan"], "must be a finite number > 0"),
    (["--backend", "torch"], "invalid choice"),
    (["--dtype", "float16"], "invalid choice"),
    (["--hidden", "0"], "must be at least 1"),
    (["--threads", "0"], "must be at least 1"),
    (["--sizes", "100", "10", "10"], "must start with 784"),
])
def test_bad_options_exit_2_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_without_network_is_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path),
           "HOME": str(tmp_path)}
    done = run_cli("--data-dir", str(tmp_path / "nothing"), "--no-progress", env=env)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("fastnet: error: could not download") and "put MNIST into" in last
    assert "Traceback" not in done.stderr
