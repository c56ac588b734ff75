"""The registry's students (depthwise ones included) build from scratch and export to an ONNX
graph the quantizers take: a forward pass at the preset's small image sizes."""

import pytest
import torch

from edgetl.manifest import ModelSpec
from edgetl.models.registry import FEATURED, STUDENTS, build_model, parse_arch


@pytest.mark.slow  # builds four timm/edgetl models: seconds on 2 cores
@pytest.mark.parametrize("arch", STUDENTS)
def test_student_builds_from_scratch_and_runs_at_small_sizes(arch):
    assert arch in FEATURED
    parse_arch(arch)
    model, origin = build_model(ModelSpec(architecture=arch, num_classes=10), pretrained=False)
    assert origin == "random init"
    with torch.no_grad():
        for px in (32, 48):
            assert model.eval()(torch.zeros(2, 3, px, px)).shape == (2, 10)
