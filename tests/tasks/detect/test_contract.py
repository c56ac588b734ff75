"""The contract's fit in manifests: version 1 reads as shorter-side, version 2 spells it out."""

from __future__ import annotations

import json

import pytest

from edgetl.errors import ModelError
from edgetl.manifest import InputSpec, Manifest, ModelSpec, PreprocessContract, Provenance


def _manifest(contract: PreprocessContract) -> Manifest:
    h, w = contract.input_size
    return Manifest(
        kind="onnx",
        model=ModelSpec(architecture="timm/test_efficientnet", num_classes=2),
        labels=("a", "b"),
        input=InputSpec(shape=(1, 3, h, w)),
        preprocessing=contract,
        provenance=Provenance(stage="export"),
    )


def test_letterbox_contract_round_trips_through_json():
    m = _manifest(PreprocessContract.for_detection((320, 256), fit="letterbox", pad_value=0))
    back = Manifest.from_json(m.to_json())
    assert back.preprocessing.fit == "letterbox" and back.preprocessing.pad_value == 0
    assert back == m


def test_version_1_reads_as_shorter_side_and_version_2_must_spell_fit_out():
    doc = json.loads(_manifest(PreprocessContract.for_size(32)).to_json())
    for key in ("fit", "pad_value"):
        del doc["preprocessing"][key]
    v1 = {k: v for k, v in doc.items() if k not in ("task", "outputs")} | {"schema_version": 1}
    upgraded = Manifest.from_json(json.dumps(v1), "old.onnx")
    assert upgraded.preprocessing.fit == "shorter-side" and upgraded.schema_version == 2
    with pytest.raises(ModelError, match="fit"):
        Manifest.from_json(json.dumps(doc), "new.onnx")


def test_classification_contracts_keep_todays_geometry():
    c = PreprocessContract.for_size(224, crop_pct=0.875)
    assert c.fit == "shorter-side" and c.crop == "center" and c.resize == 256
