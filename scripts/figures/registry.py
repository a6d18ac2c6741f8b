"""Registry of figure functions, keyed by the ids of ../shared/FIGURES.md.

Usage in a figure module (``scripts/figures/<group>.py``)::

    from figures.registry import figure

    @figure("linreg-fit", source="000 Fig 1.1",
            caption="Least-squares line y = {phi0:.3f} + {phi1:.3f} x.")
    def linreg_fit(quick=False):
        ...
        return fig, {"phi0": phi0, "phi1": phi1, ...}

``quick=True`` asks for small sizes (tests); the returned dict holds the numbers behind the
figure. The registry stores the function wrapped in the common style (figures/style.py): it is
drawn under the style's rcParams and its figure is brought to final size, text sizes and
layout by :func:`figures.style.finalize`, so ``REGISTRY[id].func(quick)`` returns the figure as
printed (the undecorated module-level function stays as written). The caption is formatted with the dict's scalar entries (:func:`format_caption`); a
missing or unformattable field leaves the caption as written.
"""
import functools
import importlib
import pkgutil
from collections import OrderedDict
from dataclasses import dataclass
from numbers import Number
from typing import Callable

import numpy as np

from figures import style
from figures.catalogue import CATALOGUE

__all__ = ["FigureSpec", "REGISTRY", "figure", "styled", "memoize_quick", "load_all", "format_caption",
           "ordered_ids", "scalars"]


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure: catalogue id, source in the notes, caption template, function."""
    id: str
    source: str
    caption: str
    func: Callable
    module: str
    raw_func: Callable = None

    @property
    def group(self):
        """The FIGURES.md group the id belongs to (None for an id outside the catalogue)."""
        entry = CATALOGUE.get(self.id)
        return entry["group"] if entry else None

    @property
    def shows(self):
        """FIGURES.md's "shows" column for this id ("" outside the catalogue)."""
        entry = CATALOGUE.get(self.id)
        return entry["shows"] if entry else ""


#: id -> FigureSpec, in registration order
REGISTRY: "OrderedDict[str, FigureSpec]" = OrderedDict()


def figure(id, source, caption=""):
    """Decorator registering ``func(quick=False) -> (fig, data)`` under the catalogue ``id``.

    Raises ValueError for an id that is not in FIGURES.md's catalogue or is registered twice
    by another function.
    """
    if not isinstance(id, str) or id not in CATALOGUE:
        raise ValueError(f"figure id: {id!r} is not in the FIGURES.md catalogue "
                         f"(scripts/figures/catalogue.py)")

    def register(func):
        module = getattr(func, "__module__", "?")
        old = REGISTRY.get(id)
        if old is not None and (old.module, old.func.__qualname__) != (module, func.__qualname__):
            raise ValueError(f"figure id: {id!r} registered twice "
                             f"({old.module}.{old.func.__qualname__} and "
                             f"{module}.{func.__qualname__})")
        REGISTRY[id] = FigureSpec(id=id, source=source, caption=caption, func=styled(func, id),
                                  module=module, raw_func=func)
        return func

    return register


#: quick-mode results kept by :func:`memoize_quick` (None: off, the default)
_QUICK_MEMO = None


def memoize_quick(on=True):
    """Keep (on=True) or stop keeping (on=False) every figure's quick-mode result in memory, so
    that in one test session a figure drawn in quick mode by one test module (the style test)
    is not drawn again by the next (the figure tests, which read only its data dict). The
    figure functions are deterministic, so a second call would return the same numbers.
    Off by default: the runner draws every figure once anyway."""
    global _QUICK_MEMO
    _QUICK_MEMO = {} if on else None


def styled(func, fid=None):
    """``func(quick) -> (fig, data)`` drawn under the style's rcParams, its figure finalized."""
    @functools.wraps(func)
    def draw(quick=False):
        key = (fid or func.__qualname__, bool(quick))
        if quick and _QUICK_MEMO is not None and key in _QUICK_MEMO:
            return _QUICK_MEMO[key]
        with style.rc_context():
            result = func(quick=quick)
            if isinstance(result, tuple) and len(result) == 2 and hasattr(result[0], "savefig"):
                style.finalize(result[0])
        if quick and _QUICK_MEMO is not None:
            _QUICK_MEMO[key] = result
        return result

    return draw


def load_all():
    """Import every module of the ``figures`` package so that each registers its figures.

    Returns a dict module name -> exception for the modules that failed to import (the others
    still register); an empty dict when all imported.
    """
    import figures
    failures = {}
    for info in pkgutil.iter_modules(figures.__path__):
        if info.name in ("registry", "catalogue", "style") or info.name.startswith("_"):
            continue
        name = f"figures.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:  # report, keep loading the others
            failures[name] = exc
    return failures


def ordered_ids():
    """Registered ids in catalogue order (ids outside the catalogue, if any, last)."""
    order = {fid: i for i, fid in enumerate(CATALOGUE)}
    return sorted(REGISTRY, key=lambda fid: order.get(fid, len(order)))


def _scalar(v):
    if isinstance(v, (Number, np.number, str)) and not isinstance(v, bool):
        return v.item() if isinstance(v, np.generic) else v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    return None


def scalars(data):
    """The scalar entries of a figure's data dict (numbers, booleans, strings), as plain Python
    values: the numbers its checks produced, quoted by the caption and the gallery."""
    out = {}
    for k, v in (data or {}).items():
        s = _scalar(v)
        if s is not None:
            out[k] = s
    return out


def format_caption(template, data):
    """Fill ``{field:fmt}`` placeholders from the scalar entries of ``data``.

    Falls back to the raw template when a field is missing, not a scalar, or badly formatted,
    so a caption never stops the runner.
    """
    if not template:
        return ""
    fields = scalars(data)
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return template
