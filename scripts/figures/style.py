"""The one style of every figure (../shared/FIGURES.md, "Style").

Every registered figure is drawn inside :func:`rc_context` and then passed through
:func:`finalize` by the registry (figures/registry.py), so a figure module only has to draw its
content; what this module enforces centrally:

- final size: a full text width is :data:`TEXT_WIDTH` (6.5 in); a figure designed wider is
  scaled down to it (its height by the square root of the same factor, so panels in a row keep
  some height), never wider than :data:`MAX_WIDTH` (7 in) nor taller than :data:`MAX_HEIGHT`;
- text between :data:`MIN_FONT` and :data:`MAX_FONT` points at that size (8-9 pt), tick labels,
  legends and annotations included;
- one colour-blind-safe palette (Okabe & Ito, 2008) as the default colour cycle, and a fixed
  colour per method (:data:`METHOD_COLORS`, looked up with :func:`color`) so SGD, Adam, ReLU,
  tanh... keep their colour in every figure;
- sentence-case titles (a title starting with a lower-case word gets a capital; symbols and
  variable names are left alone);
- legends outside the data: a legend covering plotted points is moved below its axes;
- the layout recomputed at the final size.

:func:`place_labels` labels many points (a t-SNE map of words) without labels covering each other.

:func:`problems` lists what breaks the rules in a figure (width, small text, raw ``_``, ``^``
or ``{`` outside mathtext); tests/test_figure_style.py runs it on every registered figure.
"""
import re
import textwrap
import warnings
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import ScaledTranslation

__all__ = ["TEXT_WIDTH", "MAX_WIDTH", "MAX_HEIGHT", "MIN_FONT", "MAX_FONT", "DPI", "PALETTE",
           "OKABE_ITO", "METHOD_COLORS", "RC", "color", "rc_context", "finalize", "problems",
           "sentence_case", "raw_markup", "figure_texts", "place_labels"]

#: full text width of the notes' page, inches
TEXT_WIDTH = 6.5
#: no figure wider than this, inches
MAX_WIDTH = 7.0
#: no figure taller than this (a page minus margins and caption), inches
MAX_HEIGHT = 8.5
#: text sizes at final size, points
MIN_FONT, MAX_FONT = 8.0, 9.0
#: PNG resolution
DPI = 200

#: Okabe & Ito's colour-blind-safe palette
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7",
    "grey": "#7F7F7F",
}
#: the default colour cycle (yellow last: it is pale on white)
PALETTE = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish green", "reddish purple",
                                  "orange", "sky blue", "black", "grey", "yellow")]

_O = OKABE_ITO
#: one colour per method, the same in every figure (keys are lower case; see :func:`color`)
METHOD_COLORS = {
    # optimizers
    "gd": _O["blue"], "sgd": _O["blue"], "momentum": _O["vermillion"],
    "nesterov": _O["reddish purple"], "adagrad": _O["bluish green"], "rmsprop": _O["orange"],
    "adam": _O["black"],
    # activations
    "relu": _O["blue"], "leaky relu": _O["sky blue"], "sigmoid": _O["vermillion"],
    "tanh": _O["bluish green"], "gelu": _O["reddish purple"], "softplus": _O["orange"],
    "heaviside": _O["black"], "identity": _O["grey"], "linear": _O["grey"],
    # initializations
    "he": _O["blue"], "xavier": _O["vermillion"], "glorot": _O["vermillion"],
    "normal(1)": _O["bluish green"], "0.01·normal": _O["orange"], "zero": _O["grey"],
    # losses
    "mse": _O["blue"], "mae": _O["vermillion"], "bce": _O["bluish green"],
    "ce": _O["reddish purple"], "hinge": _O["orange"],
    # normalizations, architectures
    "batch norm": _O["blue"], "layer norm": _O["vermillion"], "none": _O["grey"],
    "plain": _O["vermillion"], "residual": _O["blue"],
    "mlp": _O["vermillion"], "cnn": _O["blue"], "rnn": _O["vermillion"], "lstm": _O["blue"],
    "transformer": _O["reddish purple"], "n-gram": _O["grey"],
    # roles
    "theory": _O["black"], "measured": _O["blue"], "data": _O["grey"], "fit": _O["blue"],
    "train": _O["blue"], "test": _O["vermillion"], "validation": _O["vermillion"],
}

#: rcParams of every figure
RC = {
    "figure.figsize": (TEXT_WIDTH, 0.62 * TEXT_WIDTH),
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "font.size": MIN_FONT,
    "axes.titlesize": MAX_FONT,
    "axes.labelsize": MIN_FONT,
    "xtick.labelsize": MIN_FONT,
    "ytick.labelsize": MIN_FONT,
    "legend.fontsize": MIN_FONT,
    "legend.title_fontsize": MIN_FONT,
    "figure.titlesize": MAX_FONT,
    "figure.labelsize": MIN_FONT,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "axes.titlepad": 4.0,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.3,
    "image.cmap": "viridis",
    "mathtext.fontset": "dejavusans",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
}


def color(name, default=None):
    """The fixed colour of a method (``"SGD"``, ``"Adam"``, ``"ReLU"``, ``"tanh"``...).

    Matching ignores case and anything after the method's name (``"Adam (lr 0.3)"`` is Adam).
    Returns ``default`` (or the palette's grey) for a name not in :data:`METHOD_COLORS`.
    """
    key = str(name).strip().lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    best = max((k for k in METHOD_COLORS if key.startswith(k) and
                (len(key) == len(k) or not key[len(k)].isalnum())), key=len, default=None)
    if best is not None:
        return METHOD_COLORS[best]
    return OKABE_ITO["grey"] if default is None else default


@contextmanager
def rc_context():
    """rcParams of the style for the figures drawn inside (as ``plt.rc_context``)."""
    with plt.rc_context(RC):
        yield


# ---- text -------------------------------------------------------------------------------------
_MATH = re.compile(r"(?<!\\)\$.*?(?<!\\)\$", re.S)


def raw_markup(s):
    """The characters ``_``, ``^``, ``{`` or ``}`` of ``s`` outside ``$...$`` (mathtext), as a
    string ("" when clean). Python format leftovers like ``{x:.2f}`` count as raw braces."""
    outside = _MATH.sub("", s.replace(r"\$", ""))
    return "".join(c for c in outside if c in "_^{}")


def sentence_case(s):
    """``s`` with a capital first letter when it starts with a lower-case English word (two or
    more ASCII letters, e.g. "valid: ..." -> "Valid: ..."). Symbols, variable names ("x", "z"),
    mathtext and words with capitals or digits inside ("t-SNE", "n-gram") are left alone."""
    m = re.match(r"([a-z]{2,})(?=[\s:,;-]|$)", s)
    if m is None or m.group(1) in ("lr", "vs", "exp", "log", "max", "min", "tanh", "sin",
                                   "cos", "softmax", "relu", "gelu", "sgd", "adam", "rmsprop"):
        return s
    return s[0].upper() + s[1:]


def figure_texts(fig):
    """Every visible, non-empty Text artist of the figure (titles, labels, tick labels, legends,
    annotations, colour bars)."""
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and _drawn(t):
            out.append(t)
    return out


def _drawn(artist):
    """False for an artist inside an invisible axes or legend (default tick labels of hidden
    axes are Text objects too)."""
    ax = artist.axes
    if ax is not None and not ax.get_visible():
        return False
    if ax is not None and not ax.axison:
        # an axes with axis('off'): its tick labels are not drawn
        if artist in ax.get_xticklabels() + ax.get_yticklabels():
            return False
    return True


def _titles(fig):
    out = []
    if getattr(fig, "_suptitle", None) is not None:
        out.append(fig._suptitle)
    for ax in fig.axes:
        out += [ax.title, ax._left_title, ax._right_title]
    return [t for t in out if t is not None and t.get_text()]


# ---- layout -------------------------------------------------------------------------------
#: least height of one row of panels at final size, inches
ROW_HEIGHT = 2.2


def _grid_rows(fig):
    rows = 1
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            rows = max(rows, spec.get_topmost_subplotspec().get_gridspec().nrows)
    return rows


def _target_size(fig):
    w, h = fig.get_size_inches()
    if w <= MAX_WIDTH and h <= MAX_HEIGHT:
        return w, h
    s = min(TEXT_WIDTH / w, 1.0)
    nh = h * np.sqrt(s)
    if s < 1.0:   # shrunk: keep room for the titles and tick labels of every row of panels
        nh = max(nh, min(h, ROW_HEIGHT * _grid_rows(fig) + (0.3 if fig._suptitle else 0.0)))
    return w * s, min(nh, MAX_HEIGHT)


def _relayout(fig):
    engine = fig.get_layout_engine()
    if engine is not None and engine.__class__.__name__ != "PlaceHolderLayoutEngine":
        fig.canvas.draw()     # constrained or tight engines lay out on every draw
        return True
    before = [ax.get_position(original=True) for ax in fig.axes]
    rect = (0, 0, 1, 1)
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        # leave the suptitle its own band (tight_layout does not always do it)
        renderer = fig.canvas.get_renderer()
        band = (sup.get_window_extent(renderer).height + 6) / (fig.get_size_inches()[1] * fig.dpi)
        sup.set_va("top")
        sup.set_y(0.995)
        rect = (0, 0, 1, 1.0 - band)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fig.tight_layout(pad=0.4, h_pad=0.6, w_pad=0.6, rect=rect)
        except Exception:  # e.g. axes that do not fit at all: keep the figure's own layout
            pass
    w, h = fig.get_size_inches()

    def squeezed(ax, old):
        new = ax.get_position()
        return ax.get_visible() and (
            (new.width < 0.5 * old.width and new.width * w < 0.5) or
            (new.height < 0.5 * old.height and new.height * h < 0.5))

    if any(squeezed(ax, old) for ax, old in zip(fig.axes, before)):
        # tight_layout squeezed an axes to nothing (decorations too large): undo it
        for ax, pos in zip(fig.axes, before):
            ax.set_position(pos)
        return False
    return True


def _data_points(ax):
    """Display coordinates of the points plotted in data coordinates (lines and scatters)."""
    pts = []
    for line in ax.lines:
        if not line.get_visible() or line.get_transform() != ax.transData:
            continue
        xy = np.column_stack([np.asarray(line.get_xdata(), float),
                              np.asarray(line.get_ydata(), float)])
        if len(xy):
            pts.append(ax.transData.transform(xy))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and coll.get_visible():
            off = coll.get_offsets()
            if len(off):
                pts.append(coll.get_offset_transform().transform(np.asarray(off, float)))
    if not pts:
        return np.empty((0, 2))
    pts = np.concatenate(pts)
    return pts[np.all(np.isfinite(pts), axis=1)]


def _covers_data(ax, legend, renderer):
    if ax.images or any(type(c).__name__ == "QuadMesh" or getattr(c, "filled", False)
                        for c in ax.collections):
        return False   # a legend on an image or filled map: leave it to the figure
    box = legend.get_window_extent(renderer)
    pts = _data_points(ax)
    if not len(pts):
        return False
    inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) &
              (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
    return bool(inside.any())


def _move_legend_below(ax, legend, renderer):
    """Re-create the legend of ``ax`` below the axes (under its tick labels and x label), in as
    many columns as fit under the axes. Returns False (and keeps the legend where it was) when
    even one column is wider than the axes."""
    handles = legend.legend_handles
    labels = [t.get_text() for t in legend.get_texts()]
    title = legend.get_title().get_text()
    tight = ax.get_tightbbox(renderer, bbox_extra_artists=[])
    axbox = ax.get_window_extent(renderer)
    # a fixed distance in inches below the axes (tick labels and x label keep their size when
    # the layout shrinks the axes afterwards)
    drop = (axbox.y0 - tight.y0) / ax.figure.dpi + 0.04
    anchor = ax.transAxes + ScaledTranslation(0, -drop, ax.figure.dpi_scale_trans)
    legend.remove()
    for ncol in range(min(len(labels), 4), 0, -1):
        new = ax.legend(handles, labels, title=title or None, loc="upper center",
                        bbox_to_anchor=(0.5, 0.0), bbox_transform=anchor, ncol=ncol,
                        frameon=False, fontsize=MIN_FONT, borderaxespad=0.0, columnspacing=1.0)
        if new.get_window_extent(renderer).width <= 1.1 * axbox.width:
            return True
        new.remove()
    ax.legend_ = legend                      # put the original back
    legend._remove_method = ax._remove_legend
    return False


_CN = re.compile(r"C(\d+)$")


def _palette_colour(c):
    m = _CN.match(c) if isinstance(c, str) else None
    return PALETTE[int(m.group(1)) % len(PALETTE)] if m else c


def _resolve_cycle_colours(fig):
    """Replace "C0", "C1"... (resolved by Matplotlib only when drawn, i.e. with the rcParams of
    the moment of saving) by the style palette's colours."""
    for line in fig.findobj(Line2D):
        for get, set_ in ((line.get_color, line.set_color),
                          (line.get_markerfacecolor, line.set_markerfacecolor),
                          (line.get_markeredgecolor, line.set_markeredgecolor)):
            c = get()
            if isinstance(c, str) and _CN.match(c):
                set_(_palette_colour(c))
    for t in fig.findobj(Text):
        c = t.get_color()
        if isinstance(c, str) and _CN.match(c):
            t.set_color(_palette_colour(c))


def _wrap_titles(fig, renderer):
    """Break a centred axes title wider than its axes over several lines (mathtext kept
    whole)."""
    changed = False
    for ax in fig.axes:
        width = ax.get_window_extent(renderer).width
        for t in (ax.title,):   # (left and right titles may span a row of small axes)
            s = t.get_text()
            if not s or "\n" in s or width <= 0:
                continue
            tw = t.get_window_extent(renderer).width
            if tw <= 1.04 * width:
                continue
            # keep $...$ groups together: protect their spaces while wrapping
            protected = _MATH.sub(lambda m: m.group(0).replace(" ", "\0"), s)
            n = max(12, int(len(s) * width / tw))
            lines = textwrap.wrap(protected, n, break_long_words=False, break_on_hyphens=False)
            t.set_text("\n".join(line.replace("\0", " ") for line in lines))
            changed = True
    return changed


def finalize(fig):
    """Bring a drawn figure to the style: final size, text sizes, sentence-case titles, legends
    off the data, layout. Returns the figure (idempotent)."""
    _resolve_cycle_colours(fig)
    for ax in fig.axes:   # images keep a full frame (the style drops top and right spines)
        if ax.images and ax.spines["left"].get_visible() and ax.spines["bottom"].get_visible():
            ax.spines["top"].set_visible(True)
            ax.spines["right"].set_visible(True)
    w, h = fig.get_size_inches()
    nw, nh = _target_size(fig)
    if (nw, nh) != (w, h):
        fig.set_size_inches(nw, nh)
    for t in _titles(fig):
        t.set_text(sentence_case(t.get_text()))
    for t in figure_texts(fig):
        size = t.get_fontsize()
        if size < MIN_FONT or size > MAX_FONT:
            t.set_fontsize(min(max(size, MIN_FONT), MAX_FONT))
    _relayout(fig)
    renderer = fig.canvas.get_renderer()
    if _wrap_titles(fig, renderer):
        _relayout(fig)
    moved = False
    legends = [ax.get_legend() for ax in fig.axes]
    if any(leg is not None and leg.get_visible() and leg._bbox_to_anchor is None
           for leg in legends):
        fig.canvas.draw()   # the legends' "best" places are found at draw time
    for ax, leg in zip(fig.axes, legends):
        if leg is None or not leg.get_visible() or leg._bbox_to_anchor is not None:
            continue   # a legend the figure placed itself (outside already) stays where it is
        if _covers_data(ax, leg, renderer) and _move_legend_below(ax, leg, renderer):
            moved = True
    if moved:
        _relayout(fig)
    _fit_saved_width(fig)
    _place_pending_labels(fig)
    fig.set_dpi(100)
    return fig


def _fit_saved_width(fig, tries=3):
    """Narrow the figure while what is saved (its tight bounding box: text or legends placed
    outside the axes grid stick out) is wider than :data:`MAX_WIDTH`."""
    for _ in range(tries):
        tight = fig.get_tightbbox(fig.canvas.get_renderer())
        if tight is None or tight.width <= MAX_WIDTH - 0.02:
            return
        w, h = fig.get_size_inches()
        if w * (TEXT_WIDTH - 0.1) / tight.width < 0.8 * TEXT_WIDTH:
            return      # something sticks far out: leave it to the figure (the test reports it)
        fig.set_size_inches(w * (TEXT_WIDTH - 0.1) / tight.width, h)
        if not _relayout(fig):
            fig.set_size_inches(w, h)   # narrower does not fit: keep the width
            return


# ---- checks --------------------------------------------------------------------------------
def problems(fig, caption=None):
    """What breaks the style in ``fig``: a list of strings (empty when it complies).

    Width ≤ :data:`MAX_WIDTH` (the figure and its tight bounding box, which is what is saved),
    no drawn text under :data:`MIN_FONT`, no raw ``_``, ``^``, ``{``, ``}`` outside mathtext,
    and, when ``caption`` is given, a non-empty caption.
    """
    out = []
    w, h = fig.get_size_inches()
    if w > MAX_WIDTH + 1e-9:
        out.append(f"width {w:.2f} in > {MAX_WIDTH} in")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)
    if tight is not None and tight.width > MAX_WIDTH + 1e-6:
        out.append(f"saved width {tight.width:.2f} in > {MAX_WIDTH} in")
    for t in figure_texts(fig):
        s = t.get_text()
        if t.get_fontsize() < MIN_FONT - 1e-9:
            out.append(f"text {s!r} at {t.get_fontsize():.1f} pt < {MIN_FONT:g} pt")
        if raw_markup(s):
            out.append(f"raw {raw_markup(s)!r} outside mathtext in {s!r}")
    if caption is not None and not str(caption).strip():
        out.append("no caption")
    return out


#: where place_labels tries a point's label, in points from the point: right, left, above, below,
#: then the four diagonals, then further out
LABEL_OFFSETS = ((3, 1), (-3, 1), (0, 5), (0, -10), (3, -9), (-3, -9), (4, 7), (-4, 7),
                 (7, -4), (-7, -4), (0, 12), (0, -17))


def place_labels(ax, points, labels, **text_kw):
    """Label points[i] with labels[i] (text keywords `text_kw`), placed by :func:`finalize` once
    the figure has its final size and layout (see _place_labels)."""
    ax.figure.__dict__.setdefault("_pending_labels", []).append((ax, np.asarray(points, float), list(labels), text_kw))


def _place_pending_labels(fig):
    """Each label of place_labels at the first of LABEL_OFFSETS where its box (with a little
    padding) covers no label placed before it and no other point (points earlier in the list choose
    first), else where it covers the fewest (a label counting ten points). Returns the number of
    labels that still cover another label."""
    pending = fig.__dict__.pop("_pending_labels", [])
    if not pending:
        return 0
    fig.canvas.draw()                       # final limits (set_aspect acts at draw time)
    renderer = fig.canvas.get_renderer()
    clashes = 0
    for ax, points, labels, text_kw in pending:
        dots = ax.transData.transform(points)
        placed = []
        for k, ((x, y), s) in enumerate(zip(points, labels)):
            others = np.delete(dots, k, axis=0)
            best = None
            for dx, dy in LABEL_OFFSETS:
                ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
                t = ax.annotate(s, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, **text_kw)
                box = t.get_window_extent(renderer).padded(2.0)
                n = 10 * sum(box.overlaps(b) for b in placed) + int(np.sum(
                    (others[:, 0] > box.x0) & (others[:, 0] < box.x1) & (others[:, 1] > box.y0) & (others[:, 1] < box.y1)))
                if best is None or n < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (n, t, box)
                else:
                    t.remove()
                if n == 0:
                    break
            placed.append(best[2])
            clashes += best[0] >= 10
    fig._label_clashes = clashes
    return clashes
