"""Progress bars: the one helper shared by `fit`, t-SNE and the figure runner.

    from engine.progress import progress

    for x in progress(items, desc="figures"):          # wraps an iterable, like tqdm
        ...
    with progress(total=n_iter, desc="t-SNE") as bar:  # or updated by hand
        bar.update(50)
        bar.set_postfix(KL=f"{kl:.4f}")
        bar.write("a log line printed above the bar")

`progress` returns a `tqdm` object from `tqdm.auto`: a text bar on a terminal, a widget in
Jupyter (a text bar there when ipywidgets is not installed). When the bar is not shown the object
is a disabled tqdm, whose methods do nothing, so callers never branch on it.

When is a bar shown? `enabled=True` or `False` decides; `enabled="auto"` (the default) shows it
when the output stream (stderr, or the `file` passed on) is a terminal or when running in a
Jupyter kernel, and never when the environment variable `CI` is set (to anything but "", "0",
"false" or "no"), so pipes, log files and CI runs stay free of carriage returns.
"""
import os
import sys

from tqdm.auto import tqdm

__all__ = ["progress", "show_progress", "in_jupyter"]

_CI_OFF = ("", "0", "false", "no")


def in_jupyter():
    """True inside a Jupyter kernel (notebook, JupyterLab, VS Code, Colab), as tqdm.auto decides."""
    return "ipykernel" in sys.modules or "IPython.utils._process_emscripten" in sys.modules


def show_progress(enabled="auto", file=None):
    """Whether a bar is shown: `enabled` if it is True or False; for "auto": not under CI, and
    `file` (default sys.stderr, looked up at call time) is a terminal or we run in Jupyter."""
    if isinstance(enabled, bool):
        return enabled
    if enabled != "auto":
        raise ValueError(f"enabled: expected True, False or 'auto', got {enabled!r}")
    if os.environ.get("CI", "").strip().lower() not in _CI_OFF:
        return False
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):   # a closed or detached stream
        tty = False
    return tty or in_jupyter()


def progress(iterable=None, total=None, desc=None, enabled="auto", **kw):
    """A tqdm progress bar over `iterable` (or updated by hand up to `total`), shown as
    `show_progress(enabled, kw.get("file"))` decides, otherwise disabled (silent, same methods).
    Other keyword arguments go to tqdm (`unit`, `leave`, `file`, `position`, ...)."""
    shown = show_progress(enabled, kw.get("file"))
    return tqdm(iterable, total=total, desc=desc, disable=not shown, **kw)
