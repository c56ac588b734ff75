"""One top-k function decides ties everywhere (edgetl/tasks/classify/decode.py): tied logits give
the same top-1 in the metrics, in the per-image records behind the paired FP32-vs-INT8 drop, in
export's agreement and in training's prediction."""

from __future__ import annotations

import numpy as np

from edgetl.tasks.classify import TASK, decode

# INT8 rounds close logits to the same value: rows 0-2 tie between classes 1 and 2
FP32 = np.array([[0.0, 2.0, 1.9], [0.0, 1.9, 2.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
INT8 = np.array([[0.0, 2.0, 2.0], [0.0, 2.0, 2.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]], np.float32)
LABELS = np.array([1, 2, 1, 2])
CLASSES = ["a", "b", "c"]


def test_ties_go_to_the_lower_class_index():
    assert decode.predicted_class(INT8).tolist() == [1, 1, 0, 2]
    assert decode.top_k(INT8, 3)[2].tolist() == [0, 1, 2]


def test_tied_logits_give_one_top1_in_metrics_and_in_the_paired_drop():
    m32 = TASK.metrics(FP32, LABELS, CLASSES)
    m8 = TASK.metrics(INT8, LABELS, CLASSES)
    r32, r8 = TASK.records(FP32, LABELS), TASK.records(INT8, LABELS)
    assert TASK.score(r32, None) == m32["top1"] == 0.75  # row 2 is wrong in FP32
    assert TASK.score(r8, None) == m8["top1"] == 0.5  # row 1's tie goes to class 1, row 2 to class 0
    drop = TASK.paired_drop(r32, r8)
    assert drop.drop_pt == 100 * (m32["top1"] - m8["top1"])


def test_export_agreement_and_training_break_ties_alike():
    import torch

    from edgetl.tasks.classify.training import predicted

    assert predicted(torch.from_numpy(INT8)).tolist() == decode.predicted_class(INT8).tolist()
    agreement = TASK.agreement({decode.OUTPUT: FP32}, {decode.OUTPUT: INT8})
    assert agreement == float(np.mean(decode.predicted_class(FP32) == decode.predicted_class(INT8)))
