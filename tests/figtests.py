"""The one way figure tests draw a figure: quick mode, through the registry (so the common style
is applied), the figure closed, its data dict kept for the session (figure functions are
deterministic, so every test of one figure reads the same numbers)."""
import functools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from figures.registry import REGISTRY, load_all  # noqa: E402


@functools.lru_cache(maxsize=None)
def figure_data(fid, quick=True):
    """The numbers behind figure `fid` (drawn in quick mode unless quick=False)."""
    load_all()
    fig, data = REGISTRY[fid].func(quick=quick)
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
    return data
