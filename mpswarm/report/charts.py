"""The charts of the HTML report and the web UI, drawn by plotly.js (the ``plotly`` package's).

Both draw the same figures, built here as plotly's JSON (``figures``): req/s and failures/s,
users, response-time percentiles over time (p50, p90, p95, p99, max), the response-time
distribution (a histogram on a log axis) and its percentile curve. Time runs on the x axis as
clock time; every hover also says the seconds into the run. Seconds in which the generator was
saturated are shaded, recovery events and lost hosts are marked with a line.

Why plotly: its Python package ships plotly.js (4.8 MB, minified), so the report inlines it
and stays one file that opens offline, and the web UI serves the same file from loopback:
nothing comes from the network. It draws axes with time ticks, gridlines, legends, tooltips
and zoom out of the box, and an hour of history (3 600 points a series) draws in well under a
second. Bokeh's standalone HTML is smaller (~1 MB of BokehJS) but needs its Python objects to
build each figure (slow for large reports); plotly's figures are plain JSON built here.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mpswarm.stats.histogram import MIDPOINTS_US
from mpswarm.stats.snapshot import Snapshot

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js, minified, from the installed ``plotly`` package (found, not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is missing: pip install plotly")
    folder = next(iter(spec.submodule_search_locations))
    with open(os.path.join(folder, "package_data", "plotly.min.js"), encoding="utf-8") as f:
        return f.read()


def _clock(started_at: float, seconds: Sequence[float]) -> list[str]:
    return [
        datetime.datetime.fromtimestamp(started_at + t).isoformat(timespec="milliseconds")
        for t in seconds
    ]


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0, "font": {"size": 14}},
        "height": 300,
        "margin": {"l": 64, "r": 16, "t": 40, "b": 48},
        "hovermode": "x unified",
        "hoverdistance": -1,  # the nearest second, wherever the pointer is
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"title": {"text": "time"}, "type": "date", "showgrid": True},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "showgrid": True},
    }
    layout.update(extra)
    return layout


def _line(name: str, x: list[str], y: Sequence[float | None], seconds: Sequence[float],
          color: str, unit: str) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "scatter", "mode": "lines", "name": name, "x": x, "y": list(y),
        "customdata": list(seconds), "line": {"color": color, "width": 1.8},
        "hovertemplate": f"{name}: %{{y:.4~g}} {unit} (at %{{customdata:.0f}} s)<extra></extra>",
    }  # fmt: skip


def _marks(snapshot: Snapshot, series: Sequence[Any]) -> list[dict[str, Any]]:
    """Shapes over every time chart: saturated seconds shaded, a profile's phases shaded and
    labelled, events as vertical lines."""
    shapes: list[dict[str, Any]] = []
    start = snapshot.started_at
    for point in series:
        if getattr(point, "saturated", False):
            x0, x1 = _clock(start, [max(0.0, point.t - 1.0), point.t])
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1,
                           "y0": 0, "y1": 1, "fillcolor": "#d62728", "opacity": 0.12,
                           "line": {"width": 0}, "name": "generator saturated"})  # fmt: skip
    for begin, end, label in snapshot.phases:  # a --profile's phases
        x0, x1 = _clock(start, [begin, end])
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1,
                       "y0": 0, "y1": 1, "fillcolor": "#2ca02c", "opacity": 0.08,
                       "line": {"width": 0}, "name": label,
                       "label": {"text": label, "font": {"size": 10},
                                 "textposition": "top left"}})  # fmt: skip
    events = [(e.at_s, f"{e.cause} -> {e.action}") for e in snapshot.recovery_events]
    events += [(h.at_s, f"{h.cause}; {h.action}") for h in snapshot.hosts_lost]
    for at_s, text in events:
        [x] = _clock(start, [at_s])
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x,
                       "y0": 0, "y1": 1, "line": {"color": "#9467bd", "dash": "dot"},
                       "label": {"text": text[:80], "font": {"size": 10},
                                 "textposition": "end"}})  # fmt: skip
    return shapes


def figures(snapshot: Snapshot, series: Sequence[Any]) -> list[dict[str, Any]]:
    """Every chart as ``{"id", "data", "layout"}`` for ``Plotly.newPlot``."""
    seconds = [p.t for p in series]
    x = _clock(snapshot.started_at, seconds)
    marks = _marks(snapshot, series)
    charts = [
        {
            "id": "chart-rps",
            "data": [
                _line("req/s", x, [p.rps for p in series], seconds, _COLORS[0], "/s"),
                _line("failures/s", x, [p.fps for p in series], seconds, _COLORS[1], "/s"),
            ],
            "layout": _layout("Requests per second", "requests / s", shapes=marks),
        },
        {
            "id": "chart-users",
            "data": [_line("users", x, [p.users for p in series], seconds, _COLORS[2], "")],
            "layout": _layout("Users", "users", shapes=marks),
        },
        {
            "id": "chart-times",
            "data": [
                _line(
                    name,
                    x,
                    [getattr(p, key, None) for p in series],
                    seconds,
                    _COLORS[i % len(_COLORS)],
                    "ms",
                )
                for i, (name, key) in enumerate(
                    [("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("max", "max")]
                )
            ],
            "layout": _layout("Response times (each second)", "ms", shapes=marks),
        },
    ]
    names = list(dict.fromkeys(n for p in series for n in (getattr(p, "endpoints", None) or {})))
    if names:
        charts.append(
            {
                "id": "chart-endpoints",
                "data": [
                    _line(name, x, [(p.endpoints or {}).get(name) for p in series], seconds,
                          _COLORS[i % len(_COLORS)], "ms")
                    for i, name in enumerate(names)
                ],
                "layout": _layout("p95 of the busiest endpoints (each second)", "ms",
                                  shapes=marks),
            }
        )  # fmt: skip
    if any(getattr(p, "dropped", None) is not None for p in series):
        charts.append(
            {
                "id": "chart-open-model",
                "data": [
                    _line("p95 (corrected)", x, [p.p95 for p in series], seconds, _COLORS[0],
                          "ms"),
                    _line("p95 (uncorrected)", x, [p.uncorrected_p95 for p in series], seconds,
                          _COLORS[4], "ms"),
                    {**_line("dropped iterations/s", x, [p.dropped for p in series], seconds,
                             _COLORS[1], "/s"), "yaxis": "y2"},
                ],
                "layout": _layout(
                    "Open model: corrected and uncorrected p95, dropped iterations", "ms",
                    shapes=marks,
                    yaxis2={"title": {"text": "dropped / s"}, "overlaying": "y",
                            "side": "right", "rangemode": "tozero", "showgrid": False},
                ),
            }
        )  # fmt: skip
    charts += _distribution(snapshot)
    return charts


def _distribution(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The whole run's response times: a histogram (log x) and the percentile curve."""
    total = snapshot.total
    if not total.requests or not total.buckets.size:
        return []
    values_ms = MIDPOINTS_US[total.buckets] / 1000.0
    counts = total.counts
    cumulative = np.cumsum(counts) / counts.sum() * 100.0
    qs = [50, 75, 90, 95, 99, 99.9, 99.99]
    percentiles = total.percentiles(qs)
    return [
        {
            "id": "chart-distribution",
            "data": [
                {
                    "type": "bar",
                    "name": "requests",
                    "x": values_ms.tolist(),
                    "y": counts.tolist(),
                    "marker": {"color": _COLORS[0]},
                    "hovertemplate": "%{x:.4~g} ms: %{y} requests<extra></extra>",
                }
            ],
            "layout": _layout(
                "Response time distribution",
                "requests",
                hovermode="closest",
                xaxis={"title": {"text": "response time (ms)"}, "type": "log", "showgrid": True},
            ),
        },
        {
            "id": "chart-percentiles",
            "data": [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": "percentile",
                    "x": cumulative.tolist(),
                    "y": values_ms.tolist(),
                    "line": {"color": _COLORS[3], "shape": "hv"},
                    "hovertemplate": "%{x:.3f} % of requests within %{y:.4~g} ms<extra></extra>",
                },
                {
                    "type": "scatter",
                    "mode": "markers+text",
                    "name": "p50 ... p99.99",
                    "x": qs,
                    "y": percentiles,
                    "text": [f"p{q:g}" for q in qs],
                    "textposition": "top left",
                    "marker": {"color": _COLORS[1], "size": 7},
                    "hovertemplate": "p%{x}: %{y:.4~g} ms<extra></extra>",
                },
            ],
            "layout": _layout(
                "Percentiles",
                "response time (ms)",
                hovermode="closest",
                xaxis={
                    "title": {"text": "percentile"},
                    "showgrid": True,
                    "range": [max(0.0, float(cumulative[0]) - 1), 100.5],
                },
                yaxis={"title": {"text": "response time (ms)"}, "type": "log", "showgrid": True},
            ),
        },
    ]


def figures_json(snapshot: Snapshot, series: Sequence[Any]) -> str:
    """``figures`` as JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(figures(snapshot, series), allow_nan=False, default=_plain)
    return text.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


#: Draws (or redraws) every figure of ``FIGURES`` into the element with its id.
DRAW_SCRIPT = """
function drawFigures(figures) {
  figures.forEach(function (f) {
    var el = document.getElementById(f.id);
    if (el) { Plotly.react(el, f.data, f.layout, {displaylogo: false, responsive: true}); }
  });
}
"""

__all__ = ["DRAW_SCRIPT", "figures", "figures_json", "plotly_js"]
