"""Figure functions reproducing the lecture notes' figures with the engine.

Each module of this package holds the figures of one group (or sub-group) of
../shared/FIGURES.md. A figure is a function ``f(quick=False) -> (matplotlib_figure, data)``
registered with :func:`figures.registry.figure` under its catalogue id; ``data`` is a dict of
the numbers behind the picture (the tests check them, the caption quotes them).
``scripts/reproduce_figures.py`` imports every module (:func:`figures.registry.load_all`) and
writes ``<out>/<id>.png`` plus a gallery page ``<out>/index.html``. Every figure is drawn in the
one style of :mod:`figures.style` (final size, 8-9 pt text, the colour-blind-safe palette and
fixed colours per method): the registry applies it, a module draws with ``style.color(name)``
for a method's colour and writes symbols in mathtext (``$f_k$``).
"""
