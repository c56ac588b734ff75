"""A generated corpus of bad training inputs: config values, weights files, resume states, output
paths and runs that diverge. Each must give an EdgetlError naming the key, file or value and the
fix (before data is loaded where it can be), never a traceback, and leave no artifact or resume
state behind that a later stage would trust.

Everything is generated in tmp_path; nothing binary is checked in.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from edgetl.config import build_config
from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError, EdgetlError, ModelError
from edgetl.train.config import DistillConfig, FinetuneConfig
from edgetl.train.finetune import finetune, resolve_device, resume_digest_text
from edgetl.train.loop import TrainingDiverged, config_digest, save_resume
from tests.conftest import TINY_ARCH

EDGETL = Path(sys.executable).parent / "edgetl"


def _cfg(tmp_path: Path, **kw) -> FinetuneConfig:
    base = dict(
        data=DataConfig(source="digits", limit_train=64, limit_val=32, limit_test=32),
        arch=TINY_ARCH,
        pretrained=False,
        image_size=16,
        epochs=1,
        batch_size=32,
        threads=1,  # 2 threads on 2 shared cores spin against each other: 10x slower
        eval_test=False,
        output=tmp_path / "out" / "m.safetensors",
    )
    base.update(kw)
    return FinetuneConfig(**base)


def _resume_of(cfg: FinetuneConfig) -> Path:
    return cfg.output.with_name(cfg.output.name + ".resume.pt")


def _nothing_written(cfg: FinetuneConfig) -> None:
    assert not cfg.output.exists(), f"{cfg.output} was written"
    assert not _resume_of(cfg).exists(), f"{_resume_of(cfg)} was left behind"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- 1. config values
@pytest.mark.parametrize(
    ("cls", "values", "key", "shown"),
    [
        (FinetuneConfig, {"device": "tpu"}, "device", "'tpu'"),
        (FinetuneConfig, {"device": "gpu0"}, "device", "'gpu0'"),
        (FinetuneConfig, {"device": "cuda:x"}, "device", "'cuda:x'"),
        (FinetuneConfig, {"lr": float("inf")}, "lr", "inf"),
        (FinetuneConfig, {"lr": float("nan")}, "lr", "nan"),
        (FinetuneConfig, {"weight_decay": float("inf")}, "weight_decay", "inf"),
        (FinetuneConfig, {"warmup_epochs": float("nan")}, "warmup_epochs", "nan"),
        (FinetuneConfig, {"label_smoothing": float("nan")}, "label_smoothing", "nan"),
        (FinetuneConfig, {"crop_pct": float("nan")}, "crop_pct", "nan"),
        (FinetuneConfig, {"output": "m.pth"}, "output", "m.pth"),
        (DistillConfig, {"teacher": "t.safetensors", "temperature": float("inf")}, "temperature", "inf"),
        (DistillConfig, {"teacher": "t.safetensors", "alpha": float("nan")}, "alpha", "nan"),
        (DistillConfig, {"teacher": "t.safetensors", "hint_weight": float("-inf")}, "hint_weight", "-inf"),
    ],
)
def test_bad_config_values_name_the_key_and_value(cls, values, key, shown):
    with pytest.raises(ConfigError) as err:
        build_config(cls, {}, values, "command line")
    text = str(err.value)
    assert f"{key}:" in text and shown in text, text
    if isinstance(next(iter(values.values())), float) and key != "output":
        assert "finite" in text or shown in text


@pytest.mark.parametrize(
    ("teacher", "output"),
    [("t.safetensors", "t.safetensors"), ("a/t.safetensors", "./a/../a/t.safetensors")],
)
def test_distill_output_equal_to_teacher_is_refused_in_the_config(teacher, output):
    with pytest.raises(ConfigError, match="never overwrites an input") as err:
        build_config(DistillConfig, {}, {"teacher": teacher, "output": output}, "command line")
    assert "teacher:" in str(err.value)


def test_output_equal_to_weights_is_refused(tmp_path):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"x")
    with pytest.raises(ConfigError, match="never overwrites an input") as err:
        build_config(FinetuneConfig, {}, {"weights": str(w), "output": str(tmp_path / "." / w.name)}, "cli")
    assert "output:" in str(err.value)


def test_distill_output_equal_to_teacher_is_refused_before_training(tmp_path):
    """model_copy skips validation: finetune() checks again before the teacher or data is read."""
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_bytes(b"precious")
    cfg = DistillConfig(teacher=teacher, arch=TINY_ARCH, output=tmp_path / "s.safetensors")
    cfg = cfg.model_copy(update={"output": teacher})
    loaded = []
    with pytest.raises(ConfigError, match="never overwrites an input") as err:
        finetune(cfg, quiet=True, kd=lambda device: loaded.append(device))
    assert str(teacher) in str(err.value) and not loaded
    assert teacher.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        pytest.param(
            "cuda",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
        ),
        ("cuda:99", "cuda:99"),
        pytest.param(
            "mps",
            "MPS is not available",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available"),
        ),
    ],
)
def test_unavailable_device_fails_before_loading_data(tmp_path, device, expected, monkeypatch):
    import edgetl.train.finetune as ft

    monkeypatch.setattr(ft, "load_task_data", lambda *a: pytest.fail("data loaded before the device check"))
    cfg = _cfg(tmp_path, device=device)
    with pytest.raises(ConfigError, match=expected) as err:
        finetune(cfg, quiet=True)
    assert f"--device {device}" in str(err.value)
    with pytest.raises(ConfigError):
        resolve_device(device)
    _nothing_written(cfg)


# ---------------------------------------------------------------- 2. divergence
def test_diverged_run_stops_names_the_epoch_and_writes_nothing(tmp_path, shape_folder):
    data = DataConfig(source=str(shape_folder))  # PNGs on disk: no sklearn import for digits
    cfg = _cfg(tmp_path, data=data, lr=1e30, optimizer="sgd", epochs=2, batch_size=8)
    with pytest.raises(TrainingDiverged) as err:
        finetune(cfg, quiet=True)
    text = str(err.value)
    assert isinstance(err.value, ConfigError)
    assert "epoch 1/2" in text and "--lr" in text and "1e+30" in text, text
    _nothing_written(cfg)  # no NaN checkpoint, no resume state claiming to be fine


def test_nan_weights_with_a_finite_loss_are_caught_at_the_epoch_end(tmp_path):
    """The last step of an epoch can turn the weights NaN while its loss was still finite."""
    from edgetl.train.distributed import DistInfo
    from edgetl.train.loop import EpochPlan, LoopState, run_epochs

    net = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    resume = tmp_path / "m.safetensors.resume.pt"
    resume.write_bytes(b"state of an earlier epoch")

    def loss_fn(logits, y):
        loss = torch.nn.functional.cross_entropy(logits, y)
        with torch.no_grad():
            net.bias.fill_(float("nan"))  # after the forward: this step's loss stays finite
        return loss

    with pytest.raises(TrainingDiverged, match=r"epoch 1/3: weight 'bias' holds NaN") as err:
        run_epochs(
            core=net,
            plan_for_epoch=lambda e: EpochPlan(
                net, lambda idx, rng: (torch.ones(len(idx), 4), torch.zeros(len(idx), dtype=torch.long))
            ),
            loss_fn=loss_fn,
            validate=lambda: 0.5,
            optimizer=opt,
            scheduler=sched,
            n_train=4,
            batch_size=4,
            epochs=3,
            seed=0,
            patience=None,
            dist=DistInfo(),
            autocast=contextlib.nullcontext,
            state=LoopState(),
            resume_path=resume,
            digest="d",
            quiet=True,
        )
    assert "removed" in str(err.value) and not resume.exists()


# ---------------------------------------------------------------- 3. garbage --weights
def _tiny_state() -> dict[str, torch.Tensor]:
    import timm

    return timm.create_model(TINY_ARCH.split("/", 1)[1]).state_dict()


def _w_text(d: Path) -> Path:
    (p := d / "w.pth").write_text("these are not weights\n")
    return p


def _w_text_safetensors(d: Path) -> Path:
    (p := d / "w.safetensors").write_text("{not: safetensors}\n")
    return p


def _w_truncated_safetensors(d: Path) -> Path:
    from safetensors.torch import save_file

    p = d / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _tiny_state().items()}, p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _w_truncated_pth(d: Path) -> Path:
    p = d / "w.pth"
    torch.save(_tiny_state(), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _w_pickled_objects(d: Path) -> Path:
    (p := d / "w.pth").write_bytes(pickle.dumps({"conv_stem.weight": _Evil()}))
    return p


def _w_zip_pickled_code(d: Path) -> Path:
    torch.save({"conv_stem.weight": _Evil()}, p := d / "w.pth")  # torch's zip format
    return p


def _w_not_a_dict(d: Path) -> Path:
    torch.save([torch.zeros(3)], p := d / "w.pth")
    return p


def _w_no_tensors(d: Path) -> Path:
    torch.save({"epoch": 3, "lr": 0.1}, p := d / "w.pth")
    return p


def _w_wrong_shapes(d: Path) -> Path:
    state = _tiny_state()
    state["conv_stem.weight"] = torch.zeros(5, 3, 3, 3)
    torch.save(state, p := d / "w.pth")
    return p


def _w_other_arch(d: Path) -> Path:
    torch.save(
        torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).state_dict(), p := d / "w.pth"
    )
    return p


def _w_nan(d: Path) -> Path:
    state = _tiny_state()
    state["conv_stem.weight"].fill_(float("nan"))
    torch.save(state, p := d / "w.pth")
    return p


def _w_empty(d: Path) -> Path:
    (p := d / "w.pth").write_bytes(b"")
    return p


def _w_folder(d: Path) -> Path:
    (p := d / "w.pth").mkdir()
    return p


WEIGHTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text file": (_w_text, "not a torch weights file"),
    "text as .safetensors": (_w_text_safetensors, "not a readable .safetensors file"),
    "truncated .safetensors": (_w_truncated_safetensors, "truncated"),
    "truncated .pth": (_w_truncated_pth, "truncated"),
    "pickle of objects": (_w_pickled_objects, "weights_only"),
    "zip with pickled code": (
        _w_zip_pickled_code,
        "pickles objects other than tensors). edgetl never unpickles",
    ),
    "list, not a dict": (_w_not_a_dict, "holds a list, not a state_dict"),
    "dict without tensors": (_w_no_tensors, "holds no tensors"),
    "one wrong shape": (_w_wrong_shapes, "conv_stem.weight: (5, 3, 3, 3)"),
    "another architecture": (_w_other_arch, "different architecture"),
    "NaN weights": (_w_nan, "NaN"),
    "empty file": (_w_empty, "empty"),
    "a folder": (_w_folder, "is a folder"),
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_bad_weights_file_is_a_model_error_before_loading_data(tmp_path, case, monkeypatch):
    import edgetl.train.finetune as ft

    make, expected = WEIGHTS[case]
    (d := tmp_path / "in").mkdir()
    weights = make(d)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ft, "load_task_data", lambda *a: pytest.fail("data loaded before the weights check"))
    cfg = _cfg(tmp_path, weights=weights)
    with pytest.raises(ModelError) as err:
        finetune(cfg, quiet=True)
    text = str(err.value)
    assert str(weights) in text and expected in text, text
    assert not (tmp_path / "PWNED").exists()
    _nothing_written(cfg)


# ---------------------------------------------------------------- 4. corrupt resume state
def _payload(cfg: FinetuneConfig, digest: str | None = None, nan: bool = False) -> dict:
    """A well-formed resume state of a (different, tiny) model, written by save_resume."""
    from edgetl.train.loop import LoopState

    net = torch.nn.Linear(3, 2)
    if nan:
        net.weight.data.fill_(float("nan"))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    digest = digest or config_digest(resume_digest_text(cfg))
    save_resume(_resume_of(cfg), net, opt, sched, LoopState(epoch=1), digest)


def _r_text(cfg):
    _resume_of(cfg).write_text("garbage\n")


def _r_truncated(cfg):
    _payload(cfg)
    p = _resume_of(cfg)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _r_pickled(cfg):
    _resume_of(cfg).write_bytes(pickle.dumps({"digest": _Evil()}))


def _r_zip_pickled(cfg):
    torch.save({"digest": _Evil()}, _resume_of(cfg))


def _r_not_a_state(cfg):
    torch.save({"weights": torch.zeros(2)}, _resume_of(cfg))


def _r_other_config(cfg):
    _payload(cfg, digest="0123456789abcdef")


def _r_nan(cfg):
    _payload(cfg, nan=True)


RESUMES = {
    "garbage text": (_r_text, ModelError, "truncated or not a torch file"),
    "truncated": (_r_truncated, ModelError, "truncated"),
    "pickle of objects": (_r_pickled, ModelError, "never unpickles"),
    "zip with pickled code": (_r_zip_pickled, ModelError, "pickles objects other than tensors"),
    "not a resume state": (_r_not_a_state, ModelError, "not an edgetl resume state"),
    "another config": (_r_other_config, ConfigError, "different config"),
    "NaN weights": (_r_nan, ModelError, "NaN"),
}


@pytest.mark.parametrize("case", list(RESUMES))
def test_corrupt_resume_state_is_refused_before_loading_data(tmp_path, case, monkeypatch):
    import edgetl.train.finetune as ft

    make, exc_type, expected = RESUMES[case]
    cfg = _cfg(tmp_path)
    cfg.output.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    make(cfg)
    before = _resume_of(cfg).read_bytes()
    monkeypatch.setattr(ft, "load_task_data", lambda *a: pytest.fail("data loaded before the resume check"))
    with pytest.raises(exc_type) as err:
        finetune(cfg, resume=True, quiet=True)
    text = str(err.value)
    assert str(_resume_of(cfg)) in text and expected in text, text
    assert "delete it" in text.lower() and "without --resume" in text
    assert not cfg.output.exists() and not (tmp_path / "PWNED").exists()
    assert _resume_of(cfg).read_bytes() == before  # the user's file is left for them to judge


def test_resume_state_of_another_model_is_refused(tmp_path, shape_folder):
    """Right config digest, wrong tensors (e.g. written by another edgetl version)."""
    cfg = _cfg(tmp_path, data=DataConfig(source=str(shape_folder)))
    cfg.output.parent.mkdir(parents=True)
    _payload(cfg)
    with pytest.raises(ModelError, match="does not fit this model") as err:
        finetune(cfg, resume=True, quiet=True)
    assert str(_resume_of(cfg)) in str(err.value) and not cfg.output.exists()


# ---------------------------------------------------------------- 5. output paths
def _o_folder(tmp_path: Path) -> Path:
    (p := tmp_path / "m.safetensors").mkdir()
    return p


def _o_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "m.safetensors"


def _o_read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes into any chmod'ed folder; sysfs refuses even root
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no read-only folder to try")
        return Path("/sys/edgetl-test.safetensors")
    (d := tmp_path / "ro").mkdir()
    d.chmod(0o555)
    return d / "m.safetensors"


def _o_resume_folder(tmp_path: Path) -> Path:
    (tmp_path / "m.safetensors.resume.pt").mkdir()
    return tmp_path / "m.safetensors"


OUTPUTS = {
    "an existing folder": (_o_folder, "is a folder"),
    "below a file": (_o_under_a_file, "is a file, not a folder"),
    "in a read-only folder": (_o_read_only, "cannot write there"),
    "resume state is a folder": (_o_resume_folder, "is a folder"),
}


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_unusable_output_path_fails_before_loading_data(tmp_path, case, monkeypatch):
    import edgetl.train.finetune as ft

    make, expected = OUTPUTS[case]
    out = make(tmp_path)
    monkeypatch.setattr(ft, "load_task_data", lambda *a: pytest.fail("data loaded before the output check"))
    cfg = _cfg(tmp_path).model_copy(update={"output": out})  # as a library caller may
    with pytest.raises(ConfigError) as err:
        finetune(cfg, quiet=True)
    assert "output" in str(err.value) and expected in str(err.value), str(err.value)
    assert not out.is_file()
    if out.parent.is_dir() and os.access(out.parent, os.W_OK):
        assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------- 6. the CLI: exit 2, one line
FINETUNE = [
    "finetune",
    "--data",
    "digits",
    "--arch",
    TINY_ARCH,
    "--no-pretrained",
    "--image-size",
    "16",
    "--epochs",
    "1",
]


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--device", "tpu"], "'tpu'"),
        (["--lr", "nan"], "lr: Input should be a finite number"),
        (["-o", "{tmp}/dir.safetensors"], "dir.safetensors is a folder"),
        (
            ["distill", "--teacher", "{tmp}/t.safetensors", "-o", "{tmp}/./t.safetensors"],
            "never overwrites an input",
        ),
    ],
    ids=["device", "lr-nan", "output-folder", "output-is-teacher"],
)
def test_cli_reports_bad_training_input_with_exit_2(tmp_path, args, shown):
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "t.safetensors").write_bytes(b"teacher")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    cmd = args if args[0] == "distill" else [*FINETUNE, *args]
    if "-o" not in cmd:
        cmd += ["-o", str(tmp_path / "out" / "m.safetensors")]
    env = {**os.environ, "EDGETL_QUIET": "1", "COLUMNS": "200"}
    p = subprocess.run(
        [str(EDGETL), *cmd], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    err = _one_line(p.stderr)
    assert p.returncode == 2, p.stderr
    assert "error:" in err and shown in err, err
    assert "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert (tmp_path / "t.safetensors").read_bytes() == b"teacher"


def test_every_edgetl_error_subclass_reaches_the_cli_as_one_line():
    """TrainingDiverged is a ConfigError, so the CLI prints it without a traceback."""
    assert issubclass(TrainingDiverged, EdgetlError)
