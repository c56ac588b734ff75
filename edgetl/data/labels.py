"""A data set's class names against a model's labels."""

from __future__ import annotations

import numpy as np

from edgetl.errors import DataError


def label_map(data_classes: list[str], model_labels: list[str], source: str) -> np.ndarray:
    """data class index -> model output index; the two label sets must match."""
    if set(data_classes) != set(model_labels):
        missing = sorted(set(data_classes) - set(model_labels))
        extra = sorted(set(model_labels) - set(data_classes))
        raise DataError(
            f"{source}: its classes do not match the model's labels "
            f"(in the data only: {missing[:10]}; in the model only: {extra[:10]})."
        )
    index = {c: i for i, c in enumerate(model_labels)}
    return np.array([index[c] for c in data_classes])
