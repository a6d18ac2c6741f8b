"""Figure functions reproducing the lecture notes' figures with the engine.

Each module of this package holds the figures of one group (or sub-group) of
../shared/FIGURES.md. A figure is a function ``f(quick=False) -> (matplotlib_figure, data)``
registered with :func:`figures.registry.figure` under its catalogue id; ``data`` is a dict of
the numbers behind the picture (the tests check them, the caption quotes them).
``scripts/reproduce_figures.py`` imports every module (:func:`figures.registry.load_all`) and
writes ``<out>/<id>.png`` plus a gallery page ``<out>/index.html``.
"""
