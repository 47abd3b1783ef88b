"""The report's pictures, drawn with matplotlib's Agg renderer into PNG bytes.

No pyplot: each picture is its own ``Figure`` on a ``FigureCanvasAgg``, so
nothing needs a display and no global figure state is touched. The style is
matplotlib's defaults (a user's matplotlibrc does not change the report) plus
``_STYLE``. No user text (file names) goes into a picture: they stay in the
page, where they are escaped, and out of matplotlib's mathtext.

matplotlib keeps a list of the system's fonts in its cache folder and builds
it, by running ``fc-list`` (a child process), when the folder has none: in a
fresh home, a service user's, every run would. So when ``MPLCONFIGDIR`` is not
set the list is kept in posestream's cache (``models.fetch.cache_dir``),
beside the models, and built by the first report made with that cache.
"""

from __future__ import annotations

import io
import os
import struct
import sys

import numpy as np

from stages.frames import PART_NAMES

DPI = 100
WIDTH = 8.8  # inches: 880 pixels, the page's column
_STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
          "axes.grid": True, "grid.alpha": 0.3, "figure.facecolor": "white"}
_BLUE, _ORANGE = "#1f6fb4", "#e07b1a"
_MARGINS = (0.95, 0.2, 0.5, 0.15)  # left, right, bottom, top, in inches
_COLOURS = 64


def _matplotlib():
    """matplotlib, its font list kept in posestream's cache unless the user chose a place."""
    if "MPLCONFIGDIR" not in os.environ and "matplotlib" not in sys.modules:
        from models.fetch import cache_dir

        os.environ["MPLCONFIGDIR"] = os.fspath(cache_dir() / "matplotlib")
    import matplotlib

    return matplotlib


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its header."""
    return struct.unpack(">II", png[16:24])


def people_png(t: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray,
               span: tuple[float, float], binned: bool) -> bytes:
    """People per frame over time: a step line, and when each point stands for several
    frames, their mean with a band from their lowest to highest count."""
    def draw(fig):
        ax = fig.add_subplot()
        if binned:
            ax.fill_between(t, low, high, step="mid", color=_BLUE, alpha=0.25, linewidth=0,
                            label="lowest to highest")
            ax.plot(t, mean, drawstyle="steps-mid", color=_BLUE, linewidth=1.2, label="mean")
            ax.legend(loc="upper right", fontsize=8, frameon=False)
        else:
            ax.plot(t, mean, drawstyle="steps-post", color=_BLUE, linewidth=1.4,
                    marker="o" if len(t) <= 60 else None, markersize=3)
        ax.set_xlim(*_padded(span))
        ax.set_ylim(0, max(1.0, float(np.max(high)) if len(high) else 1.0) * 1.15)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("people in frame")

    return _render(draw, 2.3)


def tracks_png(tracks: list, span: tuple[float, float], step: float) -> bytes:
    """One bar per track from its first to its last sight (a one-frame track is one
    frame wide), on the input's time axis."""
    step = step or max((span[1] - span[0]) / 100, 0.04)  # one frame: a bar that shows

    def draw(fig):
        ax = fig.add_subplot()
        rows = np.arange(len(tracks))
        widths = [max(k.last_pts - k.first_pts, 0.0) + step for k in tracks]
        ax.barh(rows, widths, left=[k.first_pts for k in tracks], height=0.7, color=_BLUE,
                alpha=0.85)
        ax.set_yticks(rows, [f"id {k.id}" for k in tracks])
        ax.set_ylim(len(tracks) - 0.4, -0.6)  # the first seen on top
        ax.set_xlim(*_padded((span[0], span[1] + step)))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("time (s)")

    return _render(draw, 0.6 + 0.24 * max(len(tracks), 2))


def parts_png(rates: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> bytes:
    """Per part: how often it was found (bars, left) and its confidence when found
    (dot: mean; line: 10th to 90th percentile; right)."""
    def draw(fig):
        left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": (3, 2)})
        rows = np.arange(len(PART_NAMES))
        left.barh(rows, 100 * rates, height=0.7, color=_BLUE)
        left.set_yticks(rows, [name.replace("_", " ") for name in PART_NAMES])
        left.set_ylim(len(rows) - 0.4, -0.6)
        left.set_xlim(0, 100)
        left.set_xlabel("found in % of the person-frames")
        known = ~np.isnan(mean)
        below = np.maximum(mean[known] - low[known], 0)  # the percentiles are bin centres
        above = np.maximum(high[known] - mean[known], 0)
        right.errorbar(mean[known], rows[known], xerr=[below, above],
                       fmt="o", color=_ORANGE, markersize=4, elinewidth=1.5, capsize=0)
        right.set_xlim(0, max(1.0, float(np.nanmax(high)) if known.any() else 1.0))
        right.set_xlabel("confidence when found")
        for ax in (left, right):
            ax.grid(axis="y", visible=False)

    return _render(draw, 3.6)


def _padded(span: tuple[float, float]) -> tuple[float, float]:
    low, high = span
    pad = (high - low) * 0.02 or 0.5
    return low - pad, high + pad


def _render(draw, height: float) -> bytes:
    """A ``WIDTH`` x ``height`` inch figure drawn by ``draw(figure)``, as PNG bytes.

    The margins are fixed (``_MARGINS``, wide enough for the part names): a
    layout engine that measures every label would take most of the time. The
    picture is stored with a palette of ``_COLOURS`` colours, which looks the
    same for plots of a few flat colours and is a third of the size."""
    matplotlib = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_STYLE)
        fig = Figure(figsize=(WIDTH, height), dpi=DPI)
        left, right, bottom, top = _MARGINS
        fig.subplots_adjust(left=left / WIDTH, right=1 - right / WIDTH, bottom=bottom / height,
                            top=1 - top / height, wspace=0.15)
        canvas = FigureCanvasAgg(fig)
        draw(fig)
        canvas.draw()
        picture = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(),
                                   "raw", "RGBA", 0, 1).convert("RGB")
    out = io.BytesIO()
    picture.quantize(colors=_COLOURS, method=Image.Quantize.MEDIANCUT,
                     dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()
