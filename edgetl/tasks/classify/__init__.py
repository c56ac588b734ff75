"""Image classification: one class per image, logits out, top-1 as the primary metric."""

from __future__ import annotations

from edgetl.tasks.classify import checks, decode, metrics, render, score
from edgetl.tasks.spec import OutputSpec, TaskSpec


def _stratify_key(label: int) -> tuple[int, ...]:
    return (int(label),)


def _agreement(reference, candidate) -> float:
    """Share of images whose top-1 class is the same."""
    a = decode.predicted_class(decode.decode(reference))
    b = decode.predicted_class(decode.decode(candidate))
    return float((a == b).mean()) if len(a) else 1.0


def _plots(metrics, out_dir):
    from edgetl.tasks.classify.plots import write_plots

    return write_plots(metrics, out_dir)


def _metrics(logits, labels, classes):
    import numpy as np

    return metrics.classification_metrics(np.asarray(logits), np.asarray(labels), list(classes))


TASK = TaskSpec(
    name="classify",
    summary="image classification: one label per image",
    target="one class index per image",
    data_formats=("fashion-mnist", "digits", "ImageFolder directory", "CSV with a path,label header"),
    outputs=(OutputSpec(decode.OUTPUT, ("N", "classes"), "one score per label, before softmax"),),
    primary_metric="top1",
    metric_label="top-1",
    direction="max",
    stratify_key=_stratify_key,
    decode=decode.decode,
    records=score.records,
    score=score.score,
    metrics=_metrics,
    check_manifest=checks.check_manifest,
    check_graph=checks.check_graph,
    check_weights=checks.check_weights,
    render=render.render,
    agreement=_agreement,
    agreement_key="top1_agreement",
    agreement_label="top-1 agreement",
    training="edgetl.tasks.classify.training",
    report_metrics=("top1", "top5", "per_class"),
    headline=(("top1", "top-1"), ("top5", "top-5")),
    plots=_plots,
    figures=("Confusion matrices", "confusion"),
    describe=render.describe,
    paired_drop=score.paired_drop,
)
