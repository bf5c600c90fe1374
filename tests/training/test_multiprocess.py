"""Multi-process training on the CPU (issue #18, item 5): two gloo processes started by the launchers
users use train exactly like one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.training.helpers import copy_task_rows, write_config, write_mixture

REPO = Path(__file__).resolve().parents[2]
CPU2 = REPO / "configs" / "train" / "accelerate" / "cpu2.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(launcher: str, args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``flanlab ARGS`` as two processes through ``launcher`` (accelerate or torchrun)."""
    port = str(_free_port())
    if launcher == "accelerate":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU2),
               "--main_process_port", port, "-m", "flanlab", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
               "-m", "flanlab", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "FLANLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


@pytest.mark.parametrize("launcher", ["accelerate", pytest.param("torchrun", marks=pytest.mark.slow)])
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_llama_dir, launcher):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(160, seed=9))
    common = {"steps": 4, "batch_size": 2, "dropout": 0.0, "save_every": 2, "log_every": 1}
    # One process accumulating 2 micro-batches per step = two processes with one each.
    one = write_config(tmp_path / "one.yaml", tiny_llama_dir, mix, train={**common, "grad_accum": 2})
    two = write_config(tmp_path / "two.yaml", tiny_llama_dir, mix, train={**common, "grad_accum": 1})
    assert main(["train", str(one), "--run-name", str(tmp_path / "one")]) == 0
    done = launch(launcher, ["train", str(two), "--run-name", str(tmp_path / "two")], tmp_path)
    # Two processes, one run: every process reports the same finished run.
    assert done.stdout.count(f"{tmp_path / 'two'}: 4 steps") == 2
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 4
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    wa = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    wb = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5
    assert json.loads((tmp_path / "two" / "results.json").read_text())["steps"] == 4
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-000002"]


@pytest.mark.slow
def test_accelerate_cpu_flag_starts_one_process(tmp_path, tiny_llama_dir):
    """Why `accelerate launch --cpu --num_processes 2` trained alone: --cpu picks accelerate's simple
    launcher, which starts one process unless an MPI hostfile is given; configs/train/accelerate/
    cpu2.yaml (and torchrun) start two."""
    mix = write_mixture(tmp_path / "mix", copy_task_rows(40))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix, train={"steps": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "FLANLAB_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "-m", "flanlab", "train", str(cfg), "--run-name", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(f"{tmp_path / 'r'}: 1 steps") == 1


@pytest.mark.slow
def test_fsdp_sharded_checkpoint_resumes_and_exports_plain_weights(tmp_path, tiny_llama_dir):
    """FSDP with 2 processes: a sharded checkpoint is saved and resumed, and final/ (gathered with
    accelerate's get_state_dict) loads in plain transformers with the unsharded run's weights.
    Where accelerate cannot run FSDP, flanlab refuses clearly and the test skips with flanlab's message:
    torch 2.13 can shard on the CPU (fully_shard over gloo works here), but accelerate 1.15's
    AcceleratorState switches to FSDP only for GPU-like process types (MULTI_GPU, MULTI_XPU, MULTI_NPU,
    ...), so under this launcher config on a CPU machine flanlab's processes come up MULTI_CPU (plain data
    parallel) and flanlab refuses instead of training unsharded. Forcing the state to FSDP by hand (not done in flanlab: accelerate internals) wraps the model with
    FSDP2 and one optimizer step runs, but Accelerator.save_state then fails in accelerate's
    safetensors cleaning of the sharded tensors ("RuntimeError: Attempted to access the data pointer on
    an invalid python storage"); checked 2026-12-01 with torch 2.13.0+cpu, accelerate 1.15."""
    import yaml

    fsdp = yaml.safe_load((REPO / "configs" / "train" / "accelerate" / "fsdp.yaml").read_text())
    fsdp.update({"num_processes": 2, "mixed_precision": "no"})
    fsdp["fsdp_config"]["fsdp_cpu_ram_efficient_loading"] = False
    launcher_cfg = tmp_path / "fsdp2.yaml"
    launcher_cfg.write_text(yaml.safe_dump(fsdp))
    mix = write_mixture(tmp_path / "mix", copy_task_rows(160, seed=9))
    common = {"steps": 4, "batch_size": 2, "dropout": 0.0, "save_every": 2, "log_every": 1}
    one = write_config(tmp_path / "one.yaml", tiny_llama_dir, mix, train={**common, "grad_accum": 2})
    two = write_config(tmp_path / "two.yaml", tiny_llama_dir, mix, train={**common, "grad_accum": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "FLANLAB_PROGRESS": "0"}

    def run_fsdp(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher_cfg),
                               "--main_process_port", str(_free_port()), "-m", "flanlab", "train", str(two),
                               "--run-name", str(tmp_path / name)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    done = run_fsdp("fsdp")
    if done.returncode != 0 and "runs it only on GPUs" in done.stderr:
        # Both processes print the refusal, possibly on one line: quote it once.
        reason = done.stderr[done.stderr.index("FSDP was asked for"):].split("flanlab train: error:")[0].strip()
        pytest.skip(f"FSDP not runnable here; flanlab says: {reason}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "fsdp" / "checkpoints" / "step-000002" / "accelerate").is_dir()
    # Resume from the sharded step-2 checkpoint in a fresh folder.
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    import shutil

    shutil.copytree(tmp_path / "fsdp" / "checkpoints" / "step-000002",
                    tmp_path / "resumed" / "checkpoints" / "step-000002")
    assert run_fsdp("resumed").returncode == 0
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "fsdp")[2:]
    assert main(["train", str(one), "--run-name", str(tmp_path / "one")]) == 0
    from transformers import AutoModelForCausalLM

    ref = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    for name in ("fsdp", "resumed"):
        model = AutoModelForCausalLM.from_pretrained(tmp_path / name / "final")
        weights = model.state_dict()
        assert max((weights[k] - ref[k]).abs().max().item() for k in ref) < 1e-5
