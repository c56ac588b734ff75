import itertools

import pytest
from PIL import Image

from edgetl.bench.plots import LatencyPoint, accuracy_limits, pareto_front, plot_latency_accuracy


def P(label: str, p50: float, top1: float, backend: str = "onnxruntime", **kw) -> LatencyPoint:
    return LatencyPoint(label, backend, p50, top1, **kw)


def test_pareto_single_point():
    p = P("a", 1.0, 0.9)
    assert pareto_front([p]) == [p]
    assert pareto_front([]) == []


def test_pareto_drops_dominated_points_and_sorts_by_latency():
    fast_bad, slow_good, mid = P("fast", 0.5, 0.80), P("slow", 5.0, 0.95), P("mid", 1.0, 0.90)
    dominated = [P("slower+worse", 2.0, 0.85), P("worse than fast", 0.6, 0.79)]
    for order in itertools.permutations([slow_good, *dominated, fast_bad, mid]):
        assert pareto_front(list(order)) == [fast_bad, mid, slow_good]


def test_pareto_ties():
    a = P("a", 1.0, 0.9)
    same_speed_worse = P("b", 1.0, 0.8)  # dominated: as fast, less accurate
    same_acc_slower = P("c", 2.0, 0.9)  # dominated: as accurate, slower
    twin = P("a", 1.0, 0.9, backend="openvino")  # exact tie: neither dominates the other
    front = pareto_front([same_acc_slower, a, same_speed_worse, twin])
    assert front == [a, twin]


def test_point_validation():
    with pytest.raises(ValueError, match="p50_ms"):
        P("a", 0.0, 0.9)
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        P("a", 1.0, 93.5)  # a percentage, not a fraction


@pytest.mark.parametrize(
    ("acc", "lo", "hi"),
    [
        ([93.54, 93.61], 93.54, 93.61),  # noise: the axis still spans 2 pt
        ([60.0, 90.0], 60.0, 90.0),  # wide range: padded, wider than 2 pt
        ([99.9, 100.0], 99.9, 100.0),  # near the top: shifted down, not past 100
        ([0.1], 0.1, 0.1),
    ],
)
def test_accuracy_limits(acc, lo, hi):
    y0, y1 = accuracy_limits(acc, min_span_pt=2.0)
    assert y1 - y0 >= 2.0 - 1e-9
    assert 0.0 <= y0 < lo and hi <= y1 <= 100.0
    assert y1 - y0 >= hi - lo


def _no_overlap(boxes):
    return not any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        for a, b in itertools.combinations(boxes, 2)
    )


def test_plot_writes_png_with_minimum_span_and_front(tmp_path):
    points = [
        P("teacher (torch)", 12.3, 0.9361, backend="torch"),
        P("student (torch)", 2.1, 0.9356, backend="torch"),
        P("student (onnx fp32)", 0.81, 0.9356),
        P("student (onnx fp32)", 0.62, 0.9356, backend="openvino"),
        P("student (onnx int8)", 0.45, 0.9354, shipped=True, note="QDQ"),
        P("student (onnx int8)", 0.44, 0.9354, backend="openvino"),
    ]
    out = tmp_path / "report" / "latency_accuracy.png"
    info = plot_latency_accuracy(points, out, title="tiny")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 300
    assert [f.name for f in tmp_path.joinpath("report").iterdir()] == ["latency_accuracy.png"]  # no temp left
    y0, y1 = info.ylim
    assert y1 - y0 >= 2.0 - 1e-9 and y0 < 93.54 and y1 > 93.61
    assert [(p.label, p.backend) for p in info.front] == [
        ("student (onnx int8)", "openvino"),
        ("student (onnx fp32)", "openvino"),
        ("teacher (torch)", "torch"),
    ]
    assert len(info.label_boxes) == len(points) and _no_overlap(info.label_boxes)


def test_plot_labels_never_overlap_when_points_coincide(tmp_path):
    points = [P(f"model {i}", 1.0, 0.9, backend=f"b{i % 3}", shipped=i == 0) for i in range(15)]
    info = plot_latency_accuracy(points, tmp_path / "same.png", min_span_pt=5.0)
    assert info.ylim[1] - info.ylim[0] >= 5.0 - 1e-9
    assert len(info.front) == 15  # exact ties: none dominates another
    assert _no_overlap(info.label_boxes)


def test_plot_needs_points(tmp_path):
    with pytest.raises(ValueError, match="at least one point"):
        plot_latency_accuracy([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_pareto_front_follows_the_metric_direction():
    from edgetl.bench.plots import Metric

    lower = Metric("error", "error", "min")
    fast, slow_low, mid_high = P("fast", 0.5, 0.30), P("slow", 5.0, 0.10), P("mid", 1.0, 0.35)
    assert pareto_front([mid_high, slow_low, fast], lower) == [fast, slow_low]  # mid: slower and worse
    assert pareto_front([mid_high, slow_low, fast]) == [fast, mid_high]  # slow: slower and worse


def test_plot_names_the_tasks_metric_and_its_direction(tmp_path):
    from edgetl.bench.plots import Metric
    from edgetl.tasks.registry import task

    metric = Metric.of(task("detect"))
    assert (metric.key, metric.label, metric.direction) == ("map50_95", "mAP", "max")
    points = [P("det (torch)", 3.0, 0.31, backend="torch"), P("det (onnx fp32)", 1.2, 0.31, shipped=True)]
    info = plot_latency_accuracy(points, tmp_path / "map.png", title="t", metric=metric)
    assert info.ylabel == "mAP, % (higher is better)" and info.key_header[4] == "mAP %"
    assert [p.label for p in info.front] == ["det (onnx fp32)"]
    classify = plot_latency_accuracy(points, tmp_path / "top1.png")
    assert classify.ylabel == "top-1, % (higher is better)" and classify.key_header[4] == "top-1 %"
