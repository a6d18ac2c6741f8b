"""Bounds on the number of linear regions of ReLU networks (notes 000 §3.2, 004 §2.4.10).

Notation: n_0 = input dimension (the notes' D_i or D), hidden widths n_1 … n_L, H = Σ n_l.

- `zaslavsky(n0, n)`: a shallow net with n hidden units in general position has at most (and,
  generically, exactly) Σ_{j=0}^{n0} C(n, j) regions: the number of regions of an arrangement of n
  hyperplanes in general position in R^{n0} (Zaslavsky 1975; notes 000 §3.2, with D_i = 2, D = 3 → 7).
- `two_to_h(widths)`: 2^H, one region per activation pattern at most (004 §2.4.10).
- `montufar_lower(n0, widths)`: Montúfar, Pascanu, Cho & Bengio 2014 (Corollary 6, "On the number of
  linear regions of deep neural networks"): a net with widths n_l ≥ n0 can reach
  (∏_{l=1}^{L−1} ⌊n_l/n0⌋^{n0}) · Σ_{j=0}^{n0} C(n_L, j) regions (the notes' Ω(…) form is its asymptotics).
- `serra_upper(n0, widths)`: Serra, Tjandraatmadja & Ramalingam 2018 ("Bounding and counting linear
  regions of deep neural networks", Theorem 1): at most
  Σ_{(j_1…j_L) ∈ J} ∏_l C(n_l, j_l),  J = {0 ≤ j_l ≤ min(n0, n_1 − j_1, …, n_{l−1} − j_{l−1}, n_l)}.
- `serra_lower(n0, widths)`: Serra et al. 2018's lower bound, for n_l ≥ 3 n0:
  (∏_{l=1}^{L−1} (⌊n_l/n0⌋ + 1)^{n0}) · Σ_{j=0}^{n0} C(n_L, j).

Lower bounds are on the *maximum* over parameters (attainable counts), not on a given network.
All results are exact Python integers.
"""
from math import comb

from engine.checks import check_int

__all__ = ["zaslavsky", "shallow_max_regions", "two_to_h", "montufar_lower", "serra_upper", "serra_lower"]


def _widths(widths):
    if isinstance(widths, int) and not isinstance(widths, bool):
        widths = [widths]
    try:
        widths = list(widths)
    except TypeError:
        raise TypeError(f"widths: expected a list of hidden-layer widths, got {widths!r}") from None
    if not widths:
        raise ValueError("widths: expected at least one hidden layer, got []")
    return [check_int(f"widths[{i}]", w, low=1) for i, w in enumerate(widths)]


def zaslavsky(n0, n):
    """Σ_{j=0}^{n0} C(n, j): the maximum number of regions of a shallow ReLU net with n0 inputs
    and n hidden units (000 §3.2). Equals 2^n when n ≤ n0."""
    n0 = check_int("n0", n0, low=1)
    n = check_int("n", n, low=0)
    return sum(comb(n, j) for j in range(0, n0 + 1))


shallow_max_regions = zaslavsky


def two_to_h(widths):
    """2^H with H the total number of hidden units (004 §2.4.10)."""
    return 2 ** sum(_widths(widths))


def montufar_lower(n0, widths):
    """Montúfar et al. 2014 lower bound on the maximal number of regions (needs n_l ≥ n0)."""
    n0 = check_int("n0", n0, low=1)
    w = _widths(widths)
    if min(w) < n0:
        raise ValueError(f"widths: Montúfar et al.'s bound needs every width ≥ n0 = {n0}, got {w}")
    p = 1
    for n in w[:-1]:
        p *= (n // n0) ** n0
    return p * zaslavsky(n0, w[-1])


def serra_lower(n0, widths):
    """Serra et al. 2018 lower bound on the maximal number of regions (needs n_l ≥ 3 n0)."""
    n0 = check_int("n0", n0, low=1)
    w = _widths(widths)
    if min(w) < 3 * n0:
        raise ValueError(f"widths: Serra et al.'s lower bound needs every width ≥ 3·n0 = {3 * n0}, got {w}")
    p = 1
    for n in w[:-1]:
        p *= (n // n0 + 1) ** n0
    return p * zaslavsky(n0, w[-1])


def serra_upper(n0, widths):
    """Serra et al. 2018 Theorem 1 upper bound, by dynamic programming over the cap
    d_l = min(n0, n_1 − j_1, …, n_l − j_l) (the dimension still available after layer l)."""
    n0 = check_int("n0", n0, low=1)
    w = _widths(widths)
    state = {n0: 1}                                   # cap -> Σ of products so far
    for n in w:
        nxt = {}
        for cap, total in state.items():
            for j in range(0, min(cap, n) + 1):
                c = min(cap, n - j)
                nxt[c] = nxt.get(c, 0) + total * comb(n, j)
        state = nxt
    return sum(state.values())
