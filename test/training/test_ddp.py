"""The torchrun path: two CPU processes (gloo) train together and only rank 0 writes checkpoints."""

import os
import subprocess
import sys

import yaml

from grm_ros.model import load_model, read_checkpoint
from grm_ros.training.trainer import FINAL, LATEST


def test_torchrun_two_processes_on_cpu(tmp_path, tiny_cfg):
    variant = tmp_path / "tiny.yaml"
    variant.write_text(yaml.safe_dump(tiny_cfg.to_dict()))
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "grm_ros.training",
        "train",
        "--variant",
        str(variant),
        "--data",
        "synthetic",
        "--steps",
        "3",
        "--batch",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        str(out),
        "--log-every",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("step 3/3") == 1  # progress from rank 0 only
    ckpt = read_checkpoint(out / LATEST)
    assert ckpt["step"] == 3 and ckpt["settings"]["batch_size"] == 2
    load_model(str(variant), out / FINAL)
