"""Report plots: the latency-accuracy chart with its Pareto front, drawn so that no text overlaps.

Each point is drawn as a marker with a small number beside it; a key table under the plot maps
each number to its artifact and backend, so long labels never collide on the plot. The y axis
spans at least ``min_span_pt`` percentage points so that run-to-run noise does not fill it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgetl.fileio import atomic_path


@dataclass(frozen=True)
class LatencyPoint:
    """One (artifact, backend) measurement: median latency in ms and top-1 accuracy in [0, 1]."""

    label: str
    backend: str
    p50_ms: float
    top1: float
    shipped: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.p50_ms) and self.p50_ms > 0):
            raise ValueError(f"{self.label} on {self.backend}: p50_ms must be > 0, got {self.p50_ms}")
        if not (math.isfinite(self.top1) and 0.0 <= self.top1 <= 1.0):
            raise ValueError(f"{self.label} on {self.backend}: top1 must be in [0, 1], got {self.top1}")


@dataclass(frozen=True)
class PlotInfo:
    """What was drawn: y limits in %, Pareto-front points, and number-label boxes in pixels."""

    ylim: tuple[float, float]
    front: tuple[LatencyPoint, ...]
    label_boxes: tuple[tuple[float, float, float, float], ...]


def pareto_front(points: list[LatencyPoint]) -> list[LatencyPoint]:
    """Points no other point dominates (as fast or faster AND as accurate or more, one strictly).

    Exact duplicates dominate neither each other, so both stay. Sorted by latency, then accuracy.
    """

    def dominated(p: LatencyPoint) -> bool:
        return any(
            q.p50_ms <= p.p50_ms and q.top1 >= p.top1 and (q.p50_ms < p.p50_ms or q.top1 > p.top1)
            for q in points
        )

    return sorted((p for p in points if not dominated(p)), key=lambda p: (p.p50_ms, -p.top1))


def accuracy_limits(top1_pct: list[float], min_span_pt: float = 2.0) -> tuple[float, float]:
    """y limits (in %) around the data: at least ``min_span_pt`` wide, padded, kept inside [0, 100]."""
    lo, hi = min(top1_pct), max(top1_pct)
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
    xy_px = [tuple(ax.transData.transform((p.p50_ms, 100 * p.top1))) for p in points]
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
        xy, off = (p.p50_ms, 100 * p.top1), (dx / scale, dy / scale)
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
) -> PlotInfo:
    """Write a PNG: log-latency vs top-1 with the Pareto front, numbered points and a key table.

    Colours are backends; points on the Pareto front have a black edge and are joined by a step
    line; the shipped model has a red ring. Written atomically. Returns what was drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    if not points:
        raise ValueError("plot_latency_accuracy needs at least one point")
    points = sorted(points, key=lambda p: (p.p50_ms, -p.top1, p.label, p.backend))
    front = pareto_front(points)
    backends = sorted({p.backend for p in points})
    colour = {b: f"C{i % 10}" for i, b in enumerate(backends)}

    # fixed layout in inches: plot on top, legend on its right, key table below
    row_in, plot_in, top_in, gap_in, width_in = 0.22, 3.6, 0.7, 0.75, 9.0
    table_in = row_in * (len(points) + 1)
    height_in = top_in + plot_in + gap_in + table_in + 0.2
    fig = Figure(figsize=(width_in, height_in), dpi=110)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes(
        (0.8 / width_in, (0.2 + table_in + gap_in) / height_in, 6.0 / width_in, plot_in / height_in)
    )
    key = fig.add_axes((0.3 / width_in, 0.2 / height_in, 8.4 / width_in, table_in / height_in))

    lat = [p.p50_ms for p in points]
    acc = [100 * p.top1 for p in points]
    ylim = accuracy_limits(acc, min_span_pt)
    ax.set_xscale("log")
    ax.set_xlim(min(lat) / 1.8, max(lat) * 1.8)
    ax.set_ylim(*ylim)
    decades = math.log10(ax.get_xlim()[1] / ax.get_xlim()[0])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    minor = (2, 3, 4, 5, 6, 8) if decades < 1 else (2, 5) if decades <= 2.5 else ()
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if _mantissa(v) in minor else ""))
    ax.axhspan(min(acc), max(acc), color="0.5", alpha=0.08, lw=0)
    ax.step([p.p50_ms for p in front], [100 * p.top1 for p in front], where="post", color="k", lw=1.2)
    on_front = {id(p) for p in front}
    radius = []
    for p in points:
        good = id(p) in on_front
        ax.scatter(
            p.p50_ms,
            100 * p.top1,
            s=60,
            color=colour[p.backend],
            alpha=1.0 if good else 0.5,
            edgecolors="k" if good else "none",
            linewidths=1.2,
            zorder=3,
            clip_on=False,
        )
        if p.shipped:
            ax.scatter(p.p50_ms, 100 * p.top1, s=260, facecolors="none", edgecolors="red", lw=2, zorder=4)
        radius.append((8 if p.shipped else 4.5) * fig.dpi / 72)
    ax.set_xlabel("p50 latency, ms (log scale)")
    ax.set_ylabel("top-1 accuracy, %")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(
        f"{title}\ntop-1 of the {len(points)} points spans {min(acc):.2f}-{max(acc):.2f} % "
        f"({max(acc) - min(acc):.2f} pt, shaded); y axis at least {min_span_pt:g} pt",
        fontsize=10,
    )
    dot = {"marker": "o", "linestyle": "none", "markersize": 7}
    handles = [Line2D([], [], color=colour[b], label=b, **dot) for b in backends] + [
        Line2D([], [], color="k", lw=1.2, label="Pareto front"),
        Line2D(
            [],
            [],
            markerfacecolor="none",
            markeredgecolor="red",
            mew=2,
            label="shipped",
            **dot | {"markersize": 12},
        ),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)

    renderer = canvas.get_renderer()
    numbers = list(range(1, len(points) + 1))
    labels = _place_labels(ax, renderer, points, numbers, radius)

    key.axis("off")
    rows = [
        [
            str(n),
            _short(p.label),
            p.backend,
            f"{p.p50_ms:.3f}",
            f"{100 * p.top1:.2f}",
            _short(
                ", ".join(
                    x
                    for x in ("shipped" if p.shipped else "", "front" if id(p) in on_front else "", p.note)
                    if x
                )
            ),
        ]
        for n, p in zip(numbers, points, strict=True)
    ]
    header = ["#", "artifact", "backend", "p50 ms", "top-1 %", "remarks"]
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

    canvas.draw()
    boxes = tuple(tuple(float(v) for v in t.get_window_extent(renderer).extents) for t in labels)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    y0, y1 = ax.get_ylim()
    return PlotInfo(ylim=(float(y0), float(y1)), front=tuple(front), label_boxes=boxes)
