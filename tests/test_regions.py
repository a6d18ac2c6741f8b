"""Exact linear-region counting (analysis.regions) and region bounds (analysis.bounds)."""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analysis import bounds
from analysis.regions import (count_patterns, network_stages, pattern_estimate_1d, pattern_estimate_2d,
                              regions_1d, regions_2d, slice_through)
from analysis.examples import shallow_network, tent_network
from engine.core import Sequential
from layers import MLP, GELU, LeakyReLU, Linear, ReLU, Tanh


BIG = ((-50.0, 50.0), (-50.0, 50.0))


def test_generic_shallow_2d_has_7_regions():
    rng = np.random.default_rng(0)
    for seed in range(5):
        W, b = rng.normal(size=(3, 2)), rng.normal(size=3)
        # a box holding the three pairwise intersections of the units' lines, with margin
        X = np.array([np.linalg.solve(W[[i, j]], -b[[i, j]]) for i, j in [(0, 1), (0, 2), (1, 2)]])
        R = np.abs(X).max() + 1.0
        r = regions_2d(shallow_network(W, b, rng.normal(size=3)), [0, 0], [1, 0], [0, 1], ((-R, R), (-R, R)))
        assert r.n_activation_regions == 7 == r.n_linear_regions == bounds.zaslavsky(2, 3)
        assert r.total_area() == pytest.approx(4 * R ** 2, rel=1e-12)


def test_mlp_and_sequential_agree_and_evaluate():
    net = MLP([2, 3, 1], rng=1)
    r1 = regions_2d(net, [0, 0], [1, 0], [0, 1], BIG)
    r2 = regions_2d(net.to_sequential(), [0, 0], [1, 0], [0, 1], BIG)
    assert r1.n_activation_regions == r2.n_activation_regions == 7
    st_ = np.random.default_rng(0).uniform(-50, 50, (300, 2))
    np.testing.assert_allclose(r1.evaluate(st_), net.forward(r1.to_input(st_)), atol=1e-10)


@pytest.mark.parametrize("D", [1, 2, 5, 17])
def test_1d_shallow_D_units_give_D_plus_1_pieces(D):
    rng = np.random.default_rng(D)
    joints = np.sort(rng.uniform(-0.9, 0.9, D))
    w = rng.choice([-1.0, 1.0], D) * rng.uniform(0.5, 2, D)
    net = shallow_network(w[:, None], -w * joints, rng.normal(size=D) + 3.0)
    r = regions_1d(net, [-1.0], [1.0])
    assert r.n_activation_regions == D + 1 == r.n_linear_regions
    np.testing.assert_allclose(r.points(r.linear_breaks[1:-1])[:, 0], joints, atol=1e-12)


@pytest.mark.parametrize("L", list(range(1, 13)))
def test_telgarsky_tent_has_2_pow_L_pieces(L):
    r = regions_1d(tent_network(L), [0.0], [1.0])
    assert r.n_linear_regions == 2 ** L
    assert r.n_activation_regions == 2 ** L
    s = np.linspace(0, 1, 257)
    np.testing.assert_allclose(r.evaluate(s), tent_network(L).forward(s[:, None]), atol=1e-9)
    assert bounds.two_to_h([2] * L) >= 2 ** L


def test_dead_unit_merges_linear_regions():
    # the third unit has zero outgoing weight: crossing it changes the pattern, not the function
    W = np.array([[1.0, 0.2], [-0.3, 1.0], [0.7, -1.0]])
    b = np.array([0.1, -0.2, 0.3])
    r = regions_2d(shallow_network(W, b, [1.0, -2.0, 0.0]), [0, 0], [1, 0], [0, 1], BIG)
    assert r.n_activation_regions == 7
    assert r.n_linear_regions == 4               # the 2 live lines alone cut the plane into 4
    r1 = regions_1d(shallow_network(W[:, :1], b, [1.0, -2.0, 0.0]), [-5.0], [5.0])
    assert r1.n_activation_regions == 4 and r1.n_linear_regions == 3


def test_leaky_relu_zero_weight_unit():
    W = np.array([[1.0], [-1.0]])
    net = shallow_network(W, [0.0, 0.5], [1.0, 1.0], activation=LeakyReLU(0.1))
    r = regions_1d(net, [-2.0], [2.0])
    assert r.n_activation_regions == 3 == r.n_linear_regions
    mlp = MLP([1, 4, 1], activation="leaky_relu", negative_slope=0.2, rng=0)
    r = regions_1d(mlp, [-10.0], [10.0])
    s = np.linspace(0, 1, 101)
    np.testing.assert_allclose(r.evaluate(s), mlp.forward(r.points(s)), atol=1e-10)


def test_degenerate_units_zero_on_vertex_and_edge():
    # unit 0: its line x = 0 is the slice's left edge; unit 1: zero exactly at the corner (1, 1);
    # unit 2: duplicate of unit 3 (coincident boundary); unit 4 parallel to unit 3.
    W = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [1.0, -1.0], [1.0, -1.0]])
    b = np.array([0.0, -2.0, 0.0, 0.0, -0.5])
    net = shallow_network(W, b, [1.0, 2.0, 1.0, 1.0, 3.0])
    r = regions_2d(net, [0, 0], [1, 0], [0, 1], ((0.0, 1.0), (0.0, 1.0)))
    # inside the unit square only the lines s = t and s − t = 0.5 cut: 3 regions
    assert r.n_activation_regions == 3 == r.n_linear_regions
    assert r.total_area() == pytest.approx(1.0)
    # a unit exactly zero at a segment endpoint and one tangent to zero split nothing in 1-D
    r1 = regions_1d(shallow_network([[1.0], [1.0]], [0.0, -1.0], [1.0, 1.0]), [0.0], [1.0])
    assert r1.n_activation_regions == 1


def test_constant_unit_on_slice():
    # the slice direction is orthogonal to unit 0's weights: it is constant on the slice
    W = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    net = shallow_network(W, [0.0, 0.0, -0.1], [1.0, 1.0, 1.0])
    r = regions_1d(net, [-1.0, 0.0], [1.0, 0.0])
    assert r.n_activation_regions == 3
    for b0 in (0.0, 1.0):       # a unit with zero weights: dead (b = 0) or always on (b = 1)
        net = shallow_network([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], [b0, 0.0, -0.1], [1.0, 1.0, 1.0])
        r2 = regions_2d(net, [0, 0], [1, 0], [0, 1], ((-1, 1), (0.5, 1)))
        assert r2.n_activation_regions == 3
        assert all(p.pattern[0] == bool(b0) for p in r2.pieces)


def test_high_dimensional_input_2d_slice_matches_forward():
    rng = np.random.default_rng(1)
    net = MLP([7, 8, 8, 2], rng=2)
    X = rng.normal(size=(3, 7))
    o, u, v, ext = slice_through(*X)
    r = regions_2d(net, o, u, v, ext)
    pts = rng.uniform(-0.25, 1.25, (400, 2))
    np.testing.assert_allclose(r.evaluate(pts), net.forward(r.to_input(pts)), atol=1e-10)
    assert r.total_area() == pytest.approx(1.5 ** 2)
    # every sample's pattern is its polygon's pattern
    from analysis.regions import activation_patterns
    P = activation_patterns(net, r.to_input(pts))
    idx = r.locate(pts)
    for k in range(0, 400, 7):
        assert np.array_equal(P[k], r.pieces[idx[k]].pattern)


def test_exact_2d_width32_under_10s():
    rng = np.random.default_rng(0)
    net = MLP([10, 32, 32, 32, 1], rng=3)
    X = rng.normal(size=(3, 10))
    t = time.perf_counter()
    r = regions_2d(net, *slice_through(*X))
    elapsed = time.perf_counter() - t
    assert elapsed < 10.0
    assert r.n_activation_regions > 100
    assert r.n_linear_regions <= r.n_activation_regions
    # the same on the slice through three digits (64-D inputs, 10 outputs)
    from engine.data import digits_split
    (Xd, _), _ = digits_split()
    net = MLP([64, 32, 32, 32, 10], rng=0)
    t = time.perf_counter()
    r = regions_2d(net, *slice_through(Xd[0], Xd[1], Xd[2]))
    assert time.perf_counter() - t < 10.0
    assert r.total_area() == pytest.approx(1.5 ** 2)


def test_sampled_estimate_vs_exact():
    net = MLP([2, 16, 16, 1], rng=0)
    est, r = pattern_estimate_2d(net, [0, 0], [1, 0], [0, 1], ((-2, 2), (-2, 2)), n_samples=20000)
    assert est <= r.n_activation_regions        # patterns here occur in one region each
    assert est >= 0.5 * r.n_activation_regions
    few, _ = pattern_estimate_2d(net, [0, 0], [1, 0], [0, 1], ((-2, 2), (-2, 2)), n_samples=50)
    assert few < r.n_activation_regions         # sparse sampling misses regions
    est1, r1 = pattern_estimate_1d(tent_network(6), [0.0], [1.0], n_samples=10000)
    assert est1 <= r1.n_activation_regions
    # over-count of linear regions: a dead unit's two sides are one linear region
    W = np.array([[1.0, 0.2], [-0.3, 1.0], [0.7, -1.0]])
    net = shallow_network(W, [0.1, -0.2, 0.3], [1.0, -2.0, 0.0])
    est, r = pattern_estimate_2d(net, [0, 0], [1, 0], [0, 1], ((-5, 5), (-5, 5)), n_samples=20000)
    assert est > r.n_linear_regions


def test_bounds_values():
    assert bounds.zaslavsky(2, 3) == 7
    assert bounds.zaslavsky(1, 5) == 6
    assert bounds.zaslavsky(5, 3) == 8
    assert bounds.two_to_h([3, 4]) == 128
    assert bounds.montufar_lower(1, [2, 2, 2]) == 2 * 2 * 3
    assert bounds.serra_upper(2, [3]) == 7                     # one layer: Zaslavsky
    assert bounds.serra_upper(1, [2, 2]) == 9                   # 1-D input: Π (n_l + 1)
    for w in ([3, 3], [4, 5, 6], [7]):                           # Serra et al.: exact for 1-D inputs
        assert bounds.serra_lower(1, w) == bounds.serra_upper(1, w) == int(np.prod([n + 1 for n in w]))
    assert bounds.serra_lower(1, [3, 3]) == 4 * 4
    for n0, w in [(1, [4, 4, 4]), (2, [6, 6]), (3, [9, 9, 9])]:
        assert bounds.montufar_lower(n0, w) <= bounds.serra_lower(n0, w) <= bounds.serra_upper(n0, w) <= bounds.two_to_h(w)


def test_serra_upper_bruteforce():
    from itertools import product
    from math import comb
    n0, w = 2, [3, 4, 2]
    total = 0
    for js in product(*[range(n + 1) for n in w]):
        ok, cap = True, n0
        for j, n in zip(js, w):
            if j > min(cap, n):
                ok = False
                break
            cap = min(cap, n - j)
        if ok:
            total += np.prod([comb(n, j) for n, j in zip(w, js)])
    assert bounds.serra_upper(n0, w) == total


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(1, 6))
def test_random_nets_within_bounds_and_consistent(seed, depth, width):
    net = MLP([2] + [width] * depth + [1], rng=seed)
    r = regions_2d(net, [0, 0], [1, 0], [0, 1], ((-3, 3), (-3, 3)))
    assert r.n_linear_regions <= r.n_activation_regions <= bounds.serra_upper(2, [width] * depth)
    assert r.total_area() == pytest.approx(36.0, rel=1e-9)
    if depth == 1:
        assert r.n_activation_regions <= bounds.zaslavsky(2, width)
    r1 = regions_1d(net, [-3, 1], [3, -2])
    assert r1.n_activation_regions <= bounds.serra_upper(1, [width] * depth)
    s = np.linspace(0, 1, 50)
    np.testing.assert_allclose(r1.evaluate(s), net.forward(r1.points(s)), atol=1e-9)


def test_bad_networks_and_slices():
    with pytest.raises(ValueError, match="net"):
        regions_1d(MLP([1, 3, 1], activation="tanh"), [0.0], [1.0])
    with pytest.raises(ValueError, match="layers"):
        regions_1d(Sequential(Linear(1, 2), Tanh(), Linear(2, 1)), [0.0], [1.0])
    with pytest.raises(ValueError, match="layers"):
        regions_1d(Sequential(Linear(1, 2), GELU(), Linear(2, 1)), [0.0], [1.0])
    with pytest.raises(TypeError, match="net"):
        regions_1d("not a net", [0.0], [1.0])
    from layers import Softmax
    with pytest.raises(TypeError, match="layers"):
        regions_1d(Sequential(Linear(1, 2), Softmax(), Linear(2, 1)), [0.0], [1.0])
    net = MLP([2, 3, 1], rng=0)
    with pytest.raises(ValueError, match="end"):
        regions_1d(net, [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="start"):
        regions_1d(net, [1.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="v"):
        regions_2d(net, [0, 0], [1, 1], [2, 2], ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="u"):
        regions_2d(net, [0, 0], [0, 0], [2, 2], ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="extent"):
        regions_2d(net, [0, 0], [1, 0], [0, 1], ((1, 0), (0, 1)))
    with pytest.raises(ValueError, match="extent"):
        regions_2d(net, [0, 0], [1, 0], [0, 1], (0, 1))
    with pytest.raises(ValueError, match="widths"):
        bounds.montufar_lower(3, [2, 2])


def test_network_stages_shapes():
    st_ = network_stages(MLP([3, 4, 5, 2], rng=0))
    assert [s[0].shape for s in st_] == [(4, 3), (5, 4), (2, 5)]
    assert [s[2] for s in st_] == [0.0, 0.0, None]
    assert count_patterns(MLP([3, 4, 1], rng=0), np.zeros((5, 3))) == 1


def test_input_space_maps_and_float32():
    rng = np.random.default_rng(5)
    net = MLP([4, 6, 5, 3], activation="leaky_relu", negative_slope=0.1, rng=1)
    X = rng.normal(size=(3, 4))
    r = regions_2d(net, *slice_through(*X))
    for i in range(0, len(r.pieces), 3):
        p = r.pieces[i]
        x = r.to_input(p.centroid)[None]
        J, c = r.input_map(i)
        np.testing.assert_allclose(x @ J.T + c, net.forward(x), atol=1e-10)
        np.testing.assert_allclose(J @ np.stack([r.u, r.v], 1), p.M, atol=1e-10)
    r1 = regions_1d(net, X[0], X[1])
    J, c = r1.input_map(0)
    x = r1.points([0.5 * (r1.pieces[0].s0 + r1.pieces[0].s1)])
    np.testing.assert_allclose(x @ J.T + c, net.forward(x), atol=1e-10)
    net32 = MLP([2, 3, 1], dtype=np.float32, rng=1)
    r32 = regions_2d(net32, [0, 0], [1, 0], [0, 1], BIG)
    assert r32.n_activation_regions == regions_2d(MLP([2, 3, 1], rng=1), [0, 0], [1, 0], [0, 1], BIG).n_activation_regions


def test_sampled_estimate_high_dimensional_input():
    rng = np.random.default_rng(2)
    net = MLP([20, 16, 16, 1], rng=4)
    X = rng.normal(size=(3, 20))
    est, r = pattern_estimate_2d(net, *slice_through(*X), n_samples=5000)
    assert 0 < est <= r.n_activation_regions
    # in the full 20-D input space only the estimate exists: it grows with the sample size
    Z = rng.normal(size=(4000, 20))
    assert count_patterns(net, Z[:100]) <= count_patterns(net, Z) <= 2 ** 32


def test_coincident_joints_1d():
    # two units with the same joint at x = 0.3 (one scaled copy of the other): one joint, 2 pieces
    net = shallow_network([[1.0], [2.0]], [-0.3, -0.6], [1.0, 1.0])
    r = regions_1d(net, [-1.0], [1.0])
    assert r.n_activation_regions == 2 == r.n_linear_regions
    np.testing.assert_allclose(r.points(r.breaks[1:-1])[:, 0], [0.3])


def test_estimate_vs_exact_table():
    from analysis.regions import estimate_vs_exact
    c = estimate_vs_exact(MLP([5, 12, 12, 1], rng=1), *slice_through(*np.eye(5)[:3]), n_samples=(30, 300, 30000))
    e = c["estimates"]
    assert e[30] <= e[300] <= e[30000] <= c["exact_activation"]
    assert e[30] < c["exact_activation"]


def test_sequential_variants_output_relu_and_stacked_linears():
    a = Linear(1, 1)
    a.weight.value[:] = 1.0
    a.bias.value[:] = 0.0
    r = regions_1d(Sequential(a, ReLU()), [-1.0], [1.0])          # output activation splits too
    assert r.n_activation_regions == 2 and r.n_linear_regions == 2
    b = Linear(1, 3)
    b.weight.value[:] = [[1.0], [-1.0], [2.0]]
    b.bias.value[:] = [0.1, 0.2, -0.5]
    c = Linear(3, 2, rng=0)
    d = Linear(2, 1, rng=1)
    seq = Sequential(b, c, ReLU(), d)                              # two Linears in a row compose
    r = regions_1d(seq, [-2.0], [2.0])
    s = np.linspace(0, 1, 101)
    np.testing.assert_allclose(r.evaluate(s), seq.forward(r.points(s)), atol=1e-12)
    assert r.n_activation_regions <= 3
    with pytest.raises(ValueError, match="layers"):
        regions_1d(Sequential(ReLU(), Linear(1, 1)), [0.0], [1.0])


@pytest.mark.parametrize("dims", [([2, 8, 8, 1]), ([1, 5, 4, 2])])
def test_mlp_and_to_sequential_agree_for_every_slope(dims):
    """The MLP is read through its to_sequential(), so both give one answer; LeakyReLU(1) is the
    identity: the net is affine, 1 region (before: the MLP counted every unit's sign, 15 pieces
    on a segment and 110 polygons on a slice, while its Sequential gave 1)."""
    D_in = dims[0]
    start, end = -3 * np.ones(D_in), 3 * np.ones(D_in) * np.arange(1, D_in + 1)
    for slope in (0.0, 0.1, 1.0, -0.5):
        net = MLP(dims, activation="leaky_relu", negative_slope=slope, rng=0)
        a, b = regions_1d(net, start, end), regions_1d(net.to_sequential(), start, end)
        assert (a.n_activation_regions, a.n_linear_regions) == (b.n_activation_regions, b.n_linear_regions)
        if D_in == 2:
            a2 = regions_2d(net, [0, 0], [1, 0], [0, 1], ((-3, 3), (-3, 3)))
            b2 = regions_2d(net.to_sequential(), [0, 0], [1, 0], [0, 1], ((-3, 3), (-3, 3)))
            assert (a2.n_activation_regions, a2.n_linear_regions) == (b2.n_activation_regions, b2.n_linear_regions)
        if slope == 1.0:
            assert a.n_activation_regions == a.n_linear_regions == 1
            assert count_patterns(net, np.random.default_rng(0).normal(size=(50, D_in))) == 1


def test_non_finite_weights_are_refused_by_name():
    """Before: NaN weights gave a count (NaN comparisons are False: every unit 'inactive')."""
    net = MLP([2, 4, 1], rng=0)
    net.weights[1][0, 2] = np.nan
    with pytest.raises(ValueError, match=r"^net\.weights\[1\]: expected finite values"):
        regions_1d(net, [0.0, 0.0], [1.0, 1.0])
    seq = MLP([2, 4, 1], rng=0).to_sequential()
    seq.layers[0].bias.value[3] = np.inf
    with pytest.raises(ValueError, match=r"^net\.layers\[0\]\.bias: expected finite values"):
        regions_2d(seq, [0, 0], [1, 0], [0, 1], ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match=r"^net\.layers\[0\]\.bias"):
        count_patterns(seq, np.zeros((3, 2)))


_NET = MLP([2, 3, 1], rng=0)
BAD = [
    (lambda: regions_1d(_NET, [0.0, 1j], [1.0, 1.0]), TypeError, "start"),          # was: imaginary part dropped
    (lambda: regions_1d(_NET, [0.0, "a"], [1.0, 1.0]), TypeError, "start"),
    (lambda: regions_1d(_NET, [0.0, 0.0], [1.0, np.nan]), ValueError, "end"),
    (lambda: regions_1d(_NET, [0.0, 0.0], [1.0, 1.0], tol="0"), TypeError, "tol"),
    (lambda: regions_2d(_NET, [0, 0], [1, 0], [0, 1], (("0", 1), (0, 1))), TypeError, r"extent\[0\]\[0\]"),
    (lambda: regions_2d(_NET, [0, 0], [1, 0], [0, 1], ((0, np.inf), (0, 1))), TypeError, r"extent\[0\]\[1\]"),
    (lambda: regions_2d(_NET, [0, 0], [True, False], [0, 1], ((0, 1), (0, 1))), TypeError, "u"),
    (lambda: pattern_estimate_1d(_NET, [0, 0], [1, 1], rng=-1), ValueError, "rng"),  # was: unnamed
    (lambda: pattern_estimate_1d(_NET, [0, 0], [1, 1], n_samples=0), ValueError, "n_samples"),
    (lambda: pattern_estimate_2d(_NET, [0, 0], [1, 0], [0, 1], BIG, rng="0"), TypeError, "rng"),
    (lambda: count_patterns(_NET, np.zeros((3, 3))), ValueError, "X"),
    (lambda: count_patterns(_NET, [[1 + 0j, 0.0]]), TypeError, "X"),
    (lambda: slice_through([0, 0], [1, 0], [0, 1, 2]), ValueError, "p2"),
    (lambda: slice_through([0, 0], [1, 0], [0, 1], margin=-1), ValueError, "margin"),
    (lambda: regions_1d(_NET, [0, 0], [1, 1]).evaluate([0.5j]), TypeError, "s"),
    (lambda: regions_2d(_NET, [0, 0], [1, 0], [0, 1], BIG).evaluate([[0.0, 1.0, 2.0]]), ValueError, "st"),
    (lambda: shallow_network([[1.0]], [0.0, 1.0], [1.0]), ValueError, "b"),
    (lambda: shallow_network([[1.0]], [0.0], [1.0], b_out="0"), TypeError, "b_out"),
    (lambda: shallow_network([[1.0]], [0.0], [1.0], activation="relu"), TypeError, "activation"),
    (lambda: tent_network(0), ValueError, "L"),
    (lambda: bounds.zaslavsky(2, True), TypeError, "n"),
    (lambda: bounds.two_to_h([3, "4"]), TypeError, r"widths\[1\]"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}(?!\w)"):
        call()
