import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from edgetl.data.dataset import DataConfig
from edgetl.manifest import ModelSpec, read_manifest
from edgetl.models.registry import build_model
from edgetl.train.config import FinetuneConfig
from edgetl.train.finetune import finetune
from edgetl.train.strategies import apply_freeze, param_groups, set_train_mode, trainable_stages
from tests.conftest import TINY_ARCH


def _cfg(tmp_path, **kw):
    base = dict(
        data=DataConfig(source="digits", limit_train=400),
        arch=TINY_ARCH,
        pretrained=False,
        image_size=24,
        epochs=2,
        lr=3e-3,
        threads=2,
        output=tmp_path / "m.safetensors",
    )
    base.update(kw)
    return FinetuneConfig(**base)


def _initial_backbone(seed=0):
    torch.manual_seed(seed)
    model, _ = build_model(ModelSpec(architecture=TINY_ARCH, num_classes=10))
    return model.backbone.state_dict()


def test_linear_with_cached_features_leaves_backbone_and_bn_untouched(tmp_path):
    r = finetune(_cfg(tmp_path, strategy="linear", epochs=8, lr=1e-2), quiet=True)
    saved = load_file(str(r.path))
    for k, v in _initial_backbone().items():  # includes BN running_mean / running_var
        assert torch.equal(saved["backbone." + k], v), k
    assert r.manifest.metrics["test"]["top1"] > 0.2  # above chance (0.1) from a random backbone


def test_linear_without_cache_also_keeps_bn_statistics(tmp_path):
    r = finetune(_cfg(tmp_path, strategy="linear", cache_features=False, epochs=1), quiet=True)
    saved = load_file(str(r.path))
    for k, v in _initial_backbone().items():
        assert torch.equal(saved["backbone." + k], v), k


def test_partial_trains_only_the_top_stages(tmp_path):
    r = finetune(_cfg(tmp_path, strategy="partial", unfreeze_stages=2), quiet=True)
    saved = load_file(str(r.path))
    torch.manual_seed(0)
    model, _ = build_model(ModelSpec(architecture=TINY_ARCH, num_classes=10))
    init = model.backbone.state_dict()
    names = {s: model._stages[s] for s in range(model.num_stages)}
    changed = {
        s: any(
            not torch.equal(saved["backbone." + k], init[k])
            for k in init
            if any(k.startswith(n + ".") for n in names[s])
        )
        for s in names
    }
    top = model.num_stages - 2
    assert all(changed[s] for s in names if s >= top)
    assert not any(changed[s] for s in names if s < top)


def test_gradual_schedule_and_eval_mode_of_frozen_stages():
    assert [trainable_stages("gradual", 4, e, 0, 2) for e in range(10)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert trainable_stages("partial", 4, 0, 9, 1) == 4 and trainable_stages("linear", 4, 5, 2, 1) == 0
    model, _ = build_model(ModelSpec(architecture=TINY_ARCH, num_classes=3))
    apply_freeze(model, 1)
    set_train_mode(model, 1)
    last = model.num_stages - 1
    assert all(not m.training for s in range(last) for m in model.stage_modules(s))
    assert all(m.training for m in model.stage_modules(last)) and model.head.training
    assert all(not p.requires_grad for p in model.stage_parameters(0))


def test_discriminative_learning_rates():
    model, _ = build_model(ModelSpec(architecture=TINY_ARCH, num_classes=3))
    groups = param_groups(model, lr=1.0, backbone_mult=0.1, layer_decay=0.5)
    lrs = {g["name"]: g["lr"] for g in groups}
    top = model.num_stages - 1
    assert lrs["head"] == 1.0 and lrs[f"stage{top}"] == pytest.approx(0.1)
    assert lrs[f"stage{top - 1}"] == pytest.approx(0.05) and lrs["stage0"] < lrs["stage1"]


def test_early_stopping_and_best_checkpoint(tmp_path):
    r = finetune(_cfg(tmp_path, epochs=6, lr=5.0, optimizer="sgd", early_stopping=1), quiet=True)
    m = r.manifest.metrics
    assert m["stopped_early"] and m["epochs_run"] < 6
    best = max(h["val_top1"] for h in r.manifest.history)
    assert m["val_top1"] == best and r.manifest.history[m["best_epoch"] - 1]["val_top1"] == best


def test_config_rejects_unknown_keys_and_bad_values():
    from edgetl.config import build_config
    from edgetl.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy"):
        build_config(FinetuneConfig, {"strategy": "everything"}, {}, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"data\.lmit_train: unknown key"):
        build_config(FinetuneConfig, {"data": {"lmit_train": 5}}, {}, "cfg.yaml")
    with pytest.raises(ConfigError, match="epochs"):
        build_config(FinetuneConfig, {"epochs": "many"}, {}, "cfg.yaml")


def _cli(args, **kw):
    env = {**os.environ, "EDGETL_QUIET": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edgetl", "finetune", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


RESUME_ARGS = [
    "--data",
    "digits",
    "--arch",
    TINY_ARCH,
    "--no-pretrained",
    "--image-size",
    "32",
    "--limit-train",
    "640",
    "--epochs",
    "4",
    "--lr",
    "0.003",
    "--threads",
    "2",
    "--batch-size",
    "32",
]


def _curves(manifest) -> list:
    return [(h["epoch"], h["train_loss"], h.get("val_top1")) for h in manifest.history]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    ref = tmp_path / "ref.safetensors"
    p = _cli([*RESUME_ARGS, "-o", str(ref)])
    assert p.wait(timeout=240) == 0, p.stderr.read()

    out = tmp_path / "killed.safetensors"
    state = out.with_name(out.name + ".resume.pt")
    p = _cli([*RESUME_ARGS, "-o", str(out)])
    deadline = time.time() + 240
    while not state.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)  # mid-way through epoch 2
    p.wait()
    assert state.exists() and not out.exists(), "killed run must leave resume state, no artifact"
    epoch_at_kill = torch.load(state, weights_only=True)["loop"]["epoch"]
    assert 1 <= epoch_at_kill < 4

    p = _cli([*RESUME_ARGS, "-o", str(out), "--resume"])
    assert p.wait(timeout=240) == 0, p.stderr.read()
    assert not state.exists()
    a, b = load_file(str(ref)), load_file(str(out))
    ref_manifest, out_manifest = read_manifest(ref), read_manifest(out)
    ma, mb = ref_manifest.metrics, out_manifest.metrics
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    # on a failure, say where the runs parted: which tensors, and each epoch's loss and val score
    assert not differ, (
        f"killed at epoch {epoch_at_kill}: {len(differ)}/{len(a)} tensors differ ({differ[:4]}); "
        f"uninterrupted {_curves(ref_manifest)}; resumed {_curves(out_manifest)}"
    )
    assert ma["test"]["top1"] == mb["test"]["top1"] and ma["val_top1"] == mb["val_top1"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_with_gloo(tmp_path):
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "EDGETL_QUIET": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "edgetl",
        "finetune",
        "--data",
        "digits",
        "--arch",
        TINY_ARCH,
        "--no-pretrained",
        "--image-size",
        "24",
        "--epochs",
        "2",
        "--lr",
        "0.003",
        "--strategy",
        "gradual",
        "-o",
        str(out),
    ]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = read_manifest(out)
    assert m.metrics["test"]["top1"] > 0.15
    assert len(m.history) == 2 and m.history[0]["img_per_s"] > 0
