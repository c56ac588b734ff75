"""Report plots: the latency-metric chart with its Pareto front, drawn so that no text overlaps.

The y axis is a task's primary metric, a fraction in [0, 1] (top-1, mAP, ...), read as higher-
or lower-is-better by its direction. Each point is drawn as a marker with a small number beside
it; a key table under the plot maps each number to its artifact and backend, so long labels
never collide on the plot. The y axis spans at least ``min_span_pt`` percentage points so that
run-to-run noise does not fill it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgetl.fileio import atomic_path


@dataclass(frozen=True)
class Metric:
    """What the y axis shows: a metric key, how a person reads it, and which way is better."""

    key: str = "top1"
    label: str = "top-1"
    direction: Literal["max", "min"] = "max"

    @classmethod
    def of(cls, task) -> Metric:
        """A task's primary metric (``task``: a TaskSpec)."""
        return cls(task.primary_metric, task.metric_label, task.direction)

    @property
    def better(self) -> str:
        return "higher is better" if self.direction == "max" else "lower is better"

    def at_least_as_good(self, a: float, b: float) -> bool:
        return a >= b if self.direction == "max" else a <= b


TOP1 = Metric()


@dataclass(frozen=True)
class LatencyPoint:
    """One (artifact, backend) measurement: median latency in ms and the metric, in [0, 1]."""

    label: str
    backend: str
    p50_ms: float
    value: float
    shipped: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.p50_ms) and self.p50_ms > 0):
            raise ValueError(f"{self.label} on {self.backend}: p50_ms must be > 0, got {self.p50_ms}")
        if not (math.isfinite(self.value) and 0.0 <= self.value <= 1.0):
            raise ValueError(
                f"{self.label} on {self.backend}: the metric must be a fraction in [0, 1], got {self.value}"
            )


@dataclass(frozen=True)
class PlotInfo:
    """What was drawn: y limits in %, Pareto-front points, number-label boxes in pixels, and the
    y axis' label and the key table's header (which name the metric)."""

    ylim: tuple[float, float]
    front: tuple[LatencyPoint, ...]
    label_boxes: tuple[tuple[float, float, float, float], ...]
    ylabel: str = ""
    key_header: tuple[str, ...] = ()


def pareto_front(points: list[LatencyPoint], metric: Metric = TOP1) -> list[LatencyPoint]:
    """Points no other point dominates (as fast or faster AND as good or better by ``metric``'s
    direction, one strictly).

    Exact duplicates dominate neither each other, so both stay. Sorted by latency, then best first.
    """

    def dominated(p: LatencyPoint) -> bool:
        return any(
            q.p50_ms <= p.p50_ms
            and metric.at_least_as_good(q.value, p.value)
            and (q.p50_ms < p.p50_ms or q.value != p.value)
            for q in points
        )

    sign = -1 if metric.direction == "max" else 1
    return sorted((p for p in points if not dominated(p)), key=lambda p: (p.p50_ms, sign * p.value))


def accuracy_limits(values_pct: list[float], min_span_pt: float = 2.0) -> tuple[float, float]:
    """y limits (in %) around the data: at least ``min_span_pt`` wide, padded, kept inside [0, 100]."""
    lo, hi = min(values_pct), max(values_pct)
    span = max(min_span_pt, 1.3 * (hi - lo))
    mid = (lo + hi) / 2
    y0, y1 = mid - span / 2, mid + span / 2
    if y1 > 100:
        y0, y1 = y0 - (y1 - 100), 100.0
    if y0 < 0:
        y0, y1 = 0.0, min(100.0, y1 - y0)
    return y0, y1


def _place_labels(ax, renderer, points, numbers, marker_r_px) -> list:
    """Greedy placement: try spots on growing rings around each point; take the first free one.

    A spot is free when its text box stays inside the axes and overlaps no marker and no label
    already placed (if none is free, the nearest spot inside the axes is used). Labels that end
    up away from their marker get a thin leader line.
    """
    fig = ax.figure
    scale = fig.dpi / 72  # pixels per point
    frame = ax.get_window_extent(renderer)
    xy_px = [tuple(ax.transData.transform((p.p50_ms, 100 * p.value))) for p in points]
    taken = [(x - r, y - r, x + r, y + r) for (x, y), r in zip(xy_px, marker_r_px, strict=True)]
    placed = []
    for p, n, (x, y), r in zip(points, numbers, xy_px, marker_r_px, strict=True):
        probe = ax.text(0, 0, str(n), fontsize=8, fontweight="bold")
        bb = probe.get_window_extent(renderer)
        probe.remove()
        w, h = bb.width + 2, bb.height + 2
        spots = []  # (ring, box) on rings of 12 directions, each ring 7 pt further out
        for ring in range(10):
            dist = r + 2 + max(w, h) / 2 + 7 * scale * ring
            for a in (math.radians(45 + 30 * k) for k in range(12)):
                cx, cy = x + dist * math.cos(a), y + dist * math.sin(a)
                spots.append((ring, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
        inside = [s for s in spots if frame.x0 <= s[1][0] and s[1][2] <= frame.x1 and frame.y0 <= s[1][1]]
        inside = [s for s in inside if s[1][3] <= frame.y1] or spots
        ring, box = next((s for s in inside if not any(_overlap(s[1], t) for t in taken)), inside[0])
        dx, dy = (box[0] + box[2]) / 2 - x, (box[1] + box[3]) / 2 - y
        xy, off = (p.p50_ms, 100 * p.value), (dx / scale, dy / scale)
        if ring > 0:  # a leader line from the marker's edge to the label
            line = {"arrowstyle": "-", "lw": 0.6, "color": "0.45", "shrinkA": 0, "shrinkB": r / scale}
            ax.annotate("", xy, xytext=off, textcoords="offset points", arrowprops=line)
        ann = ax.annotate(str(n), xy, xytext=off, textcoords="offset points", ha="center", va="center")
        ann.set(fontsize=8, fontweight="bold")
        taken.append(box)
        placed.append(ann)
    return placed


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _mantissa(v: float) -> float:
    return round(v / 10 ** math.floor(math.log10(v)), 6)


def _short(s: str, n: int = 36) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def plot_latency_accuracy(
    points: list[LatencyPoint],
    path: str | Path,
    title: str = "latency vs accuracy",
    min_span_pt: float = 2.0,
    metric: Metric = TOP1,
) -> PlotInfo:
    """Write a PNG: log-latency vs ``metric`` (top-1 unless given) with the Pareto front, numbered
    points and a key table.

    Colours are backends; points on the Pareto front have a black edge and are joined by a step
    line; the shipped model has a red ring. Written atomically. Returns what was drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not points:
        raise ValueError("plot_latency_accuracy needs at least one point")
    sign = -1 if metric.direction == "max" else 1
    points = sorted(points, key=lambda p: (p.p50_ms, sign * p.value, p.label, p.backend))
    front = pareto_front(points, metric)
    fig, ax, key = _layout(len(points))
    canvas = FigureCanvasAgg(fig)
    _draw_axes(ax, points, min_span_pt, metric, title)
    radius = _draw_points(ax, points, front)
    renderer = canvas.get_renderer()
    numbers = list(range(1, len(points) + 1))
    labels = _place_labels(ax, renderer, points, numbers, radius)
    header = _key_table(key, points, numbers, front, metric)
    canvas.draw()
    boxes = tuple(tuple(float(v) for v in t.get_window_extent(renderer).extents) for t in labels)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    y0, y1 = ax.get_ylim()
    return PlotInfo((float(y0), float(y1)), tuple(front), boxes, ax.get_ylabel(), tuple(header))


def _layout(n_points: int):
    """A figure in fixed inches: plot on top, legend on its right, the key table (one row per
    point) below; returns (figure, plot axes, table axes)."""
    from matplotlib.figure import Figure

    row_in, plot_in, top_in, gap_in, width_in = 0.22, 3.6, 0.7, 0.75, 9.0
    table_in = row_in * (n_points + 1)
    height_in = top_in + plot_in + gap_in + table_in + 0.2
    fig = Figure(figsize=(width_in, height_in), dpi=110)
    ax = fig.add_axes(
        (0.8 / width_in, (0.2 + table_in + gap_in) / height_in, 6.0 / width_in, plot_in / height_in)
    )
    key = fig.add_axes((0.3 / width_in, 0.2 / height_in, 8.4 / width_in, table_in / height_in))
    return fig, ax, key


def _draw_axes(ax, points, min_span_pt: float, metric: Metric, title: str) -> None:
    """Log-latency x axis with readable ticks, y limits around the metric, labels and title."""
    from matplotlib.ticker import FuncFormatter

    lat = [p.p50_ms for p in points]
    val = [100 * p.value for p in points]
    ylim = accuracy_limits(val, min_span_pt)
    ax.set_xscale("log")
    ax.set_xlim(min(lat) / 1.8, max(lat) * 1.8)
    ax.set_ylim(*ylim)
    decades = math.log10(ax.get_xlim()[1] / ax.get_xlim()[0])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    minor = (2, 3, 4, 5, 6, 8) if decades < 1 else (2, 5) if decades <= 2.5 else ()
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if _mantissa(v) in minor else ""))
    ax.axhspan(min(val), max(val), color="0.5", alpha=0.08, lw=0)
    ax.set_xlabel("p50 latency, ms (log scale)")
    ax.set_ylabel(f"{metric.label}, % ({metric.better})")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(
        f"{title}\n{metric.label} of the {len(points)} points spans {min(val):.2f}-{max(val):.2f} % "
        f"({max(val) - min(val):.2f} pt, shaded); y axis at least {min_span_pt:g} pt",
        fontsize=10,
    )


def _draw_points(ax, points, front) -> list[float]:
    """Markers coloured by backend (front points edged, the shipped one ringed), the front's step
    line and the legend; returns each marker's radius in pixels."""
    from matplotlib.lines import Line2D

    backends = sorted({p.backend for p in points})
    colour = {b: f"C{i % 10}" for i, b in enumerate(backends)}
    ax.step([p.p50_ms for p in front], [100 * p.value for p in front], where="post", color="k", lw=1.2)
    on_front = {id(p) for p in front}
    radius = []
    for p in points:
        good = id(p) in on_front
        ax.scatter(
            p.p50_ms, 100 * p.value, s=60, color=colour[p.backend], alpha=1.0 if good else 0.5,
            edgecolors="k" if good else "none", linewidths=1.2, zorder=3, clip_on=False,
        )  # fmt: skip
        if p.shipped:
            ax.scatter(p.p50_ms, 100 * p.value, s=260, facecolors="none", edgecolors="red", lw=2, zorder=4)
        radius.append((8 if p.shipped else 4.5) * ax.figure.dpi / 72)
    dot = {"marker": "o", "linestyle": "none", "markersize": 7}
    ring = {**dot, "markersize": 12, "markerfacecolor": "none", "markeredgecolor": "red", "mew": 2}
    handles = [Line2D([], [], color=colour[b], label=b, **dot) for b in backends] + [
        Line2D([], [], color="k", lw=1.2, label="Pareto front"),
        Line2D([], [], label="shipped", **ring),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return radius


def _key_table(key, points, numbers, front, metric: Metric) -> list[str]:
    """The table under the plot: number, artifact, backend, p50, the metric in %, remarks."""
    key.axis("off")
    on_front = {id(p) for p in front}
    rows = []
    for n, p in zip(numbers, points, strict=True):
        remarks = ("shipped" if p.shipped else "", "front" if id(p) in on_front else "", p.note)
        rows.append(
            [str(n), _short(p.label), p.backend, f"{p.p50_ms:.3f}", f"{100 * p.value:.2f}",
             _short(", ".join(x for x in remarks if x))]
        )  # fmt: skip
    header = ["#", "artifact", "backend", "p50 ms", f"{metric.label} %", "remarks"]
    widths = [max(len(r[j]) for r in [header, *rows]) + 2 for j in range(len(header))]
    table = key.table(
        cellText=rows,
        colLabels=header,
        colWidths=[w / sum(widths) for w in widths],
        bbox=(0, 0, 1, 1),
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        cell.set_edgecolor("0.8")
        cell.PAD = 0.03  # matplotlib's default pads 10 % of the column width
        if r == 0:
            cell.set_facecolor("0.93")
    return header
