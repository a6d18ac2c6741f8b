"""Tests of analysis.tsne: affinities, gradients, Barnes-Hut, optimisation, metrics."""
import numpy as np
import pytest
import scipy.sparse as sp

from analysis.tsne import TSNE, joint_probabilities, kl_divergence, trustworthiness
from analysis.tsne.affinities import calibrate, knn_exact, snap, snap_grid
from analysis.tsne.affinities import joint_probabilities as joint_raw
from analysis.tsne.optimize import gradient, gradient_2d, run, run_2d


def _blobs(rng, n=120, d=6, centres=3):
    c = rng.normal(0, 4, size=(centres, d))
    return c[rng.integers(0, centres, n)] + rng.standard_normal((n, d))


def _csr(P):
    return P.indptr.astype(np.int64), P.indices.astype(np.int32), np.ascontiguousarray(P.data)


def _workspace(N, dim):
    return [np.empty((N, dim)) for _ in range(3)] + [np.empty(N), np.empty(N)]


def _digits():
    try:
        from engine.data import load_digits
        X, y = load_digits()
    except Exception:
        from sklearn.datasets import load_digits as sk_load
        X, y = sk_load(return_X_y=True)
    return np.asarray(X, dtype=np.float64), y


# ------------------------------------------------------------------ affinities
def test_knn_exact_matches_brute_force(rng):
    X = rng.standard_normal((150, 7))
    ind, dist = knn_exact(X, 9, 2)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    ref = np.sort(np.argsort(D, axis=1, kind="stable")[:, :9], axis=1)
    np.testing.assert_array_equal(ind, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(D, ind, axis=1), rtol=1e-13)


def test_knn_exact_breaks_ties_by_index(rng):
    """Integer data: many exactly tied distances; the k smallest (distance, index) are kept,
    as a stable sort by distance gives them."""
    X = rng.integers(0, 3, (120, 4)).astype(np.float64)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    for k in (1, 7, 30):
        ind, dist = knn_exact(X, k, 2)
        ref = np.sort(np.argsort(D, axis=1, kind="stable")[:, :k], axis=1)
        np.testing.assert_array_equal(ind, ref)
        np.testing.assert_array_equal(dist, np.take_along_axis(D, ind, axis=1))


@pytest.mark.parametrize("perplexity, method", [(5.0, "barnes_hut"), (12.5, "barnes_hut"), (20.0, "exact")])
def test_calibrated_perplexity_equals_requested(rng, perplexity, method):
    X = _blobs(rng)
    N = X.shape[0]
    k = N - 1 if method == "exact" else int(3 * perplexity)
    indptr, indices, data, H = joint_raw(X, perplexity, k, 2)
    perp = np.exp(H)
    assert abs(perp.mean() - perplexity) < 1e-4 * perplexity
    np.testing.assert_allclose(perp, perplexity, rtol=1e-4)
    # and the conditional distributions really have that perplexity
    ind, dist = knn_exact(X, k, 2)
    Pc, beta, _ = calibrate(dist, perplexity, 1e-5, 200)
    np.testing.assert_allclose(Pc.sum(1), 1.0, rtol=1e-12)
    Hc = -(Pc * np.log(np.where(Pc > 0, Pc, 1.0))).sum(1)
    np.testing.assert_allclose(np.exp(Hc), perplexity, rtol=1e-4)


def test_joint_probabilities_symmetric_and_normalised(rng):
    X = _blobs(rng)
    for method in ("barnes_hut", "exact"):
        P = joint_probabilities(X, 10.0, method=method)
        assert sp.isspmatrix_csr(P) or sp.issparse(P)
        D = P.toarray()
        np.testing.assert_allclose(D, D.T, rtol=0, atol=1e-18)
        assert abs(D.sum() - 1.0) < 1e-12 and (D >= 0).all() and not np.diag(D).any()
    # exact P: p_ij = (p_j|i + p_i|j) / 2N with p_j|i over all points, computed with numpy
    N = X.shape[0]
    ind, dist = knn_exact(X, N - 1, 1)
    Pc, beta, _ = calibrate(dist, 10.0, 1e-5, 200)
    Dm = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    C = np.exp(-Dm * beta[:, None])
    np.fill_diagonal(C, 0)
    C /= C.sum(1, keepdims=True)
    np.testing.assert_allclose(P.toarray(), (C + C.T) / (2 * N), rtol=1e-9, atol=1e-15)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_exact_gradient_matches_finite_differences(rng, dim):
    X = _blobs(rng, n=30, d=4)
    P = joint_probabilities(X, 5.0, method="exact")
    ip, ix, da = _csr(P)
    N = X.shape[0]
    Y = rng.standard_normal((N, dim))
    G = _workspace(N, dim)
    gradient(Y, ip, ix, da, 1.0, 0.0, True, *G, False)
    g = G[0].copy()
    num = np.empty_like(Y)
    h = 1e-6
    for i in range(N):
        for d in range(dim):
            Yp = Y.copy()
            Yp[i, d] += h
            Ym = Y.copy()
            Ym[i, d] -= h
            num[i, d] = (kl_divergence(P, Yp) - kl_divergence(P, Ym)) / (2 * h)
    err = np.abs(g - num).max() / np.abs(g).max()
    assert err < 1e-7, err
    # exaggeration scales the attractive term only: G(α) = 4 (α F_attr - F_rep / Z)
    G2 = _workspace(N, dim)
    gradient(Y, ip, ix, da, 3.0, 0.0, True, *G2, False)
    np.testing.assert_allclose(G2[0], g + 4 * 2.0 * G[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_barnes_hut_angle_zero_equals_exact(rng, dim):
    X = _blobs(rng, n=200, d=5)
    P = joint_probabilities(X, 10.0)
    ip, ix, da = _csr(P)
    N = X.shape[0]
    Y = 3 * rng.standard_normal((N, dim))
    Y[7] = Y[3]  # coincident points, and a cluster of near-duplicates
    Y[10:14] = Y[20] + 1e-9 * rng.standard_normal((4, dim))
    Ge = _workspace(N, dim)
    Ze, se = gradient(Y, ip, ix, da, 12.0, 0.0, True, *Ge, True)
    Gb = _workspace(N, dim)
    Zb, sb = gradient(Y, ip, ix, da, 12.0, 0.0, False, *Gb, True)
    assert abs(Zb - Ze) < 1e-12 * Ze and sb == se
    np.testing.assert_allclose(Gb[0], Ge[0], rtol=1e-10, atol=1e-14 * np.abs(Ge[0]).max())
    if dim == 2:  # the fused 2-d kernel too
        G2 = _workspace(N, dim)
        Z2, s2 = gradient_2d(Y, ip, ix, da, 12.0, 0.0, *G2, True)
        assert abs(Z2 - Ze) < 1e-12 * Ze
        np.testing.assert_allclose(G2[0], Ge[0], rtol=1e-10, atol=1e-14 * np.abs(Ge[0]).max())
    # with θ = 0.5 the approximation stays close (a sanity bound, not a spec)
    Gh = _workspace(N, dim)
    Zh, _ = gradient(Y, ip, ix, da, 12.0, 0.5, False, *Gh, False)
    assert abs(Zh - Ze) < 0.05 * Ze
    assert np.linalg.norm(Gh[0] - Ge[0]) < 0.1 * np.linalg.norm(Ge[0])


def test_barnes_hut_angle_zero_descent_follows_exact(rng):
    X = _blobs(rng, n=150, d=5)
    P = joint_probabilities(X, 10.0)
    ip, ix, da = _csr(P)
    plogp = float((da * np.log(da)).sum())
    Y0 = 1e-2 * rng.standard_normal((150, 2))
    out = []
    for fn, extra in ((run, (0.0, True)), (run, (0.0, False)), (run_2d, (0.0,))):
        Y, U, g = Y0.copy(), np.zeros_like(Y0), np.ones_like(Y0)
        fn(Y, U, g, ip, ix, da, plogp, 15, 12.0, 0.5, 50.0, *extra)
        kl, _ = fn(Y, U, g, ip, ix, da, plogp, 10, 1.0, 0.8, 50.0, *extra)
        out.append((Y, kl))
    # t-SNE's descent is chaotic (rounding differences grow ~10x per few iterations after ~30
    # iterations), so compare a short run: equal up to rounding
    for Y, kl in out[1:]:
        assert np.abs(Y - out[0][0]).max() < 1e-8 * np.abs(out[0][0]).max()
        assert abs(kl - out[0][1]) < 1e-10


def test_kl_divergence_matches_numpy(rng):
    X = _blobs(rng, n=60, d=4)
    P = joint_probabilities(X, 8.0)
    Y = rng.standard_normal((60, 2))
    D = P.toarray()
    W = 1 / (1 + ((Y[:, None] - Y[None]) ** 2).sum(-1))
    np.fill_diagonal(W, 0)
    Q = W / W.sum()
    m = D > 0
    ref = (D[m] * np.log(D[m] / Q[m])).sum()
    assert abs(kl_divergence(P, Y) - ref) < 1e-12
    assert abs(kl_divergence(D, Y) - ref) < 1e-12  # dense P too


# ------------------------------------------------------------------ the estimator
@pytest.fixture(scope="module")
def digits_runs():
    """The digits embedded by the engine and by scikit-learn, same settings, 500 iterations."""
    X, y = _digits()
    ours = TSNE(perplexity=30.0, max_iter=500, init="pca", random_state=0)
    Y = ours.fit_transform(X)
    sk = pytest.importorskip("sklearn.manifold", reason="scikit-learn not installed")
    theirs = sk.TSNE(perplexity=30.0, max_iter=500, init="pca", random_state=0, n_jobs=2)
    Ys = theirs.fit_transform(X)
    return X, Y, ours, Ys, theirs


def test_trustworthiness_on_digits_at_least_sklearns(digits_runs):
    X, Y, ours, Ys, theirs = digits_runs
    t_ours, t_sk = trustworthiness(X, Y, 5), trustworthiness(X, Ys, 5)
    assert t_ours >= t_sk - 0.01, (t_ours, t_sk)
    assert t_ours > 0.98
    assert ours.n_iter_ == 500 and ours.embedding_ is Y and np.isfinite(ours.kl_divergence_)


def test_kl_does_not_increase_late(digits_runs):
    _, _, ours, _, _ = digits_runs
    hist = ours.kl_history_
    assert [i for i, _ in hist][:3] == [49, 99, 149] and hist[-1][0] == 499
    late = np.array([kl for i, kl in hist if i >= 300])
    assert (np.diff(late) <= 1e-6 * late[:-1]).all(), late
    assert abs(ours.kl_divergence_ - late[-1]) < 0.01 * late[-1]


def test_trustworthiness_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.manifold", reason="scikit-learn not installed")
    X = rng.standard_normal((200, 6))
    Y = X[:, :2] + 0.3 * rng.standard_normal((200, 2))
    for k in (1, 5, 12):
        assert abs(trustworthiness(X, Y, k) - sk.trustworthiness(X, Y, n_neighbors=k)) < 1e-12
    assert trustworthiness(X, X, 5) == 1.0


def test_same_seed_bit_identical_any_thread_count(rng, with_threads, monkeypatch):
    import analysis.tsne.estimator as est
    monkeypatch.setattr(est, "_SERIAL_BELOW", 0)  # small N runs serially by default: force threads
    X = _blobs(rng, n=300, d=8)
    fit = lambda **kw: TSNE(perplexity=15.0, max_iter=120, random_state=7, **kw).fit_transform(X)  # noqa: E731
    a = with_threads(2, fit, init="random")
    b = with_threads(2, fit, init="random")
    c = with_threads(1, fit, init="random")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    d = fit(init="random", method="exact")
    e = with_threads(1, fit, init="random", method="exact")
    np.testing.assert_array_equal(d, e)
    assert not np.array_equal(a, TSNE(perplexity=15.0, max_iter=120, random_state=8, init="random").fit_transform(X))
    np.testing.assert_array_equal(with_threads(1, fit), with_threads(2, fit))  # pca init


def test_small_fits_run_serially_and_restore_threads(rng, with_threads):
    import numba
    X = _blobs(rng, n=100, d=5)
    seen = []

    def fit():
        from analysis.tsne import estimator as est
        orig = est._joint
        est._joint = lambda *a: (seen.append(numba.get_num_threads()), orig(*a))[1]
        try:
            TSNE(perplexity=10, max_iter=20, random_state=0).fit_transform(X)
            return numba.get_num_threads()
        finally:
            est._joint = orig

    assert with_threads(2, fit) == 2  # restored after the fit
    assert seen == [1]


def test_other_dimensions_and_options(rng):
    X = _blobs(rng, n=100, d=5)
    for nc, method in ((1, "barnes_hut"), (3, "barnes_hut"), (4, "exact")):
        Y = TSNE(n_components=nc, perplexity=10, max_iter=80, method=method, random_state=0).fit_transform(X)
        assert Y.shape == (100, nc) and np.isfinite(Y).all()
    Y0 = rng.standard_normal((100, 2))
    t = TSNE(perplexity=10, max_iter=60, init=Y0, learning_rate=100.0)
    Y = t.fit_transform(X)
    assert t.learning_rate_ == 100.0 and not np.shares_memory(Y, Y0)
    Y = TSNE(perplexity=10, max_iter=60, random_state=0).fit_transform(X.astype(np.float32))
    assert Y.dtype == np.float64


def test_verbose_progress(rng, capsys):
    X = _blobs(rng, n=100, d=5)
    TSNE(perplexity=10, max_iter=100, verbose=1, random_state=0).fit_transform(X)
    out = capsys.readouterr().out
    assert "mean perplexity 10.0000" in out
    assert "iteration    50: KL" in out and "iteration   100: KL" in out and " s" in out


def test_progress_bar(rng, capsys):
    X = _blobs(rng, n=100, d=5)
    TSNE(perplexity=10, max_iter=60, random_state=0).fit_transform(X)  # "auto": not a terminal
    assert capsys.readouterr() == ("", "")
    Y = TSNE(perplexity=10, max_iter=60, random_state=0, progress=True).fit_transform(X)
    out, err = capsys.readouterr()
    assert out == "" and "t-SNE" in err                # verbose=0: no lines; the bar on stderr
    Y_off = TSNE(perplexity=10, max_iter=60, random_state=0, progress=False).fit_transform(X)
    assert capsys.readouterr() == ("", "")
    np.testing.assert_array_equal(Y, Y_off)             # the bar does not change the result
    with pytest.raises(ValueError, match="progress: expected True, False or 'auto'"):
        TSNE(perplexity=10, progress="yes").fit_transform(X)


# ------------------------------------------------------------------ bad input
def test_bad_input_errors(rng):
    X = rng.standard_normal((40, 3))
    with pytest.raises(ValueError, match=r"X: .*3·perplexity \+ 1 = 91 points.*got 40"):
        TSNE().fit_transform(X)
    with pytest.raises(ValueError, match=r"X: .*31 points.*got 30"):
        TSNE(perplexity=10).fit_transform(X[:30])
    Xn = X.copy()
    Xn[5, 1] = np.nan
    Xn[17, 0] = np.inf
    with pytest.raises(ValueError, match=r"X: .*NaN or Inf in 2 row\(s\): 5, 17"):
        TSNE(perplexity=5).fit_transform(Xn)
    with pytest.raises(ValueError, match=r"n_components: method='barnes_hut' supports 1, 2 or 3"):
        TSNE(n_components=4, perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match="X: expected a 2-dimensional"):
        TSNE(perplexity=5).fit_transform(X[:, 0])
    with pytest.raises(TypeError, match="X: expected a numpy.ndarray"):
        TSNE(perplexity=5).fit_transform(X.tolist())
    with pytest.raises(ValueError, match="perplexity"):
        TSNE(perplexity=0.5).fit_transform(X)
    with pytest.raises(ValueError, match="method"):
        TSNE(method="fft").fit_transform(X)
    with pytest.raises(ValueError, match="angle"):
        TSNE(angle=1.5, perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match="learning_rate"):
        TSNE(learning_rate=-1.0, perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match="max_iter"):
        TSNE(max_iter=0, perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match=r"init: expected an array of shape \(40, 2\)"):
        TSNE(init=np.zeros((39, 2)), perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match="init"):
        TSNE(init="spectral", perplexity=5).fit_transform(X)
    with pytest.raises(ValueError, match="n_neighbors"):
        trustworthiness(X, X[:, :2], 20)
    with pytest.raises(ValueError, match="Y: expected 40 rows"):
        trustworthiness(X, X[:30, :2], 5)
    P = joint_probabilities(X, 5.0)
    with pytest.raises(ValueError, match=r"P: expected shape \(30, 30\)"):
        kl_divergence(P, X[:30, :2])
    with pytest.raises(ValueError, match="P: expected affinities summing to 1"):
        kl_divergence(2 * P, X[:, :2])


# ------------------------------------------------------------------ scale, overflow, complex input
SCALES = [10.0 ** e for e in (-300, -155, -150, -20, 20, 150, 155, 300)]


def test_affinities_do_not_depend_on_the_scale(rng):
    """X is centred and divided by a power of two before any distance (affinities.normalise):
    10^k X gives the same P to 1e-9 for k from -300 to 300 (before: NaN at 1e-155, where squared
    distances underflow, and an overflow at 1e155), and 2^k X the bit-identical P."""
    X = _blobs(rng, n=40, d=5)
    for method in ("barnes_hut", "exact"):
        P0 = joint_probabilities(X, 5.0, method=method)
        for c in SCALES:
            P = joint_probabilities(X * c, 5.0, method=method)
            assert np.isfinite(P.data).all()
            np.testing.assert_array_equal(P.indices, P0.indices)
            assert abs(P - P0).max() <= 1e-9 * P0.max(), c
        for k in (-900, -1, 3, 900):
            P = joint_probabilities(np.ldexp(X, k), 5.0, method=method)
            assert (P != P0).nnz == 0, k


def test_affinities_with_tied_distances_do_not_depend_on_the_scale(rng):
    """Integer data (as the digits) has many tied distances; X·10^k carries the last-bit
    rounding of the product, which used to pick the other of two tied k-th neighbours (a
    different sparsity pattern, P off by a large fraction of an entry). knn_exact ranks on a
    grid far coarser than that rounding, ties by index, so P is the same."""
    X = rng.integers(0, 4, (60, 5)).astype(np.float64)
    for method in ("barnes_hut", "exact"):
        P0 = joint_probabilities(X, 5.0, method=method)
        for k in (-150, -50, 50, 150):
            P = joint_probabilities(X * 10.0 ** k, 5.0, method=method)
            np.testing.assert_array_equal(P.indptr, P0.indptr)
            np.testing.assert_array_equal(P.indices, P0.indices)
            np.testing.assert_allclose(P.data, P0.data, rtol=1e-9, atol=0)


def test_affinities_do_not_depend_on_an_offset(rng):
    """Centring first: an offset of 1e8 no longer cancels the spread in ‖x_j‖² − 2 x_i·x_j (before:
    wrong nearest neighbours). P agrees to the precision X + 1e8 keeps of X (~1e-8)."""
    X = _blobs(rng, n=60, d=4)
    P0 = joint_probabilities(X, 8.0)
    P = joint_probabilities(X + 1e8, 8.0)
    np.testing.assert_array_equal(P.indices, P0.indices)
    assert abs(P - P0).max() <= 1e-6 * P0.max()


def test_embedding_bit_identical_under_powers_of_two(rng):
    """Dividing by powers of two is exact, so 2^k X gives the bit-identical embedding."""
    X = _blobs(rng, n=40, d=5)
    Y0 = TSNE(perplexity=5, max_iter=100, random_state=0).fit_transform(X)
    for k in (-900, -1, 1, 900):
        Y = TSNE(perplexity=5, max_iter=100, random_state=0).fit_transform(np.ldexp(X, k))
        np.testing.assert_array_equal(Y, Y0)


def test_snap_keeps_30_significant_bits(rng):
    """affinities.snap rounds mantissas to 30 bits: a relative change of at most 2^-30, zeros and
    values already on the grid unchanged, powers of two commute with it, and values that differ
    only by rounding noise (1e-13 relative) come out equal unless they straddle a rounding
    boundary (probability ~1e-13 · 2^30 ≈ 1e-4 per value)."""
    a = np.concatenate([rng.standard_normal(1000) * 10.0 ** rng.uniform(-300, 300, 1000), [0.0, -0.0]])
    s = snap(a)
    assert s.dtype == np.float64 and s.shape == a.shape
    np.testing.assert_array_equal(s[-2:], 0.0)
    assert (np.abs(s - a) <= 2.0 ** -30 * np.abs(a)).all()
    np.testing.assert_array_equal(snap(s), s)
    np.testing.assert_array_equal(snap(np.ldexp(a, 7)), np.ldexp(s, 7))
    m, _ = np.frexp(s)
    np.testing.assert_array_equal(np.ldexp(m, 30), np.round(np.ldexp(m, 30)))   # ≤ 30 bits left
    noisy = a[:-2] * (1.0 + 1e-13 * rng.uniform(-1, 1, 1000))
    assert (snap(noisy) != s[:-2]).sum() <= 3


def test_snap_grid_rounds_to_30_bits_below_the_largest(rng):
    """affinities.snap_grid (the initial map): multiples of 2^(e − 30), max |a| in [2^(e−1), 2^e):
    an absolute change of at most 2^-31 of 2 max |a|, even for entries near zero."""
    a = 1e-4 * rng.standard_normal((50, 2))
    a[0, 0] = 1e-13
    g = snap_grid(a)
    e = np.frexp(np.abs(a).max())[1]
    assert (np.abs(g - a) <= 2.0 ** (e - 31)).all()
    np.testing.assert_array_equal(np.ldexp(g, 30 - e), np.round(np.ldexp(g, 30 - e)))
    np.testing.assert_array_equal(snap_grid(g), g)
    np.testing.assert_array_equal(snap_grid(np.ldexp(a, -5)), np.ldexp(g, -5))
    np.testing.assert_array_equal(snap_grid(np.zeros((3, 2))), 0.0)
    assert g[0, 0] == 0.0                  # 1e-13 is below half the grid's step (2^-41 ≈ 4.5e-13)


SCALE_EXPONENTS = (-150, -50, 0, 50, 150)


def _scaled_fits(X, perplexity):
    """{k: fitted TSNE of X·10^k} for k in SCALE_EXPONENTS (default settings, 1,000 iterations)."""
    return {k: TSNE(perplexity=perplexity, random_state=0).fit(X * 10.0 ** k) for k in SCALE_EXPONENTS}


@pytest.mark.parametrize("n, d, perplexity", [(40, 5, 5.0), (200, 8, 10.0)])
def test_embedding_does_not_depend_on_the_scale(rng, n, d, perplexity):
    """X·10^k for k in ±150: the same affinities to 1e-9 relative, a finite embedding, and its KL
    divergence within 1 % of the unscaled fit's. (40 points at 1e-155 gave an all-NaN embedding;
    with P only normalised the descent's chaos, a 1e-13 change in P growing ~2x per iteration,
    spread the final KL by 10-40 % at 40 points.) P and the initial map are rounded to 30 bits,
    so the fits are in fact bit-identical (they would differ if one value of P or Y₀ lay within
    its rounding noise of a rounding boundary: measured, 1 data set in 125 at 200 points)."""
    X = _blobs(rng, n=n, d=d)
    fits = _scaled_fits(X, perplexity)
    ref = fits[0]
    t_ref = trustworthiness(X, ref.embedding_, 5)
    for k, t in fits.items():
        np.testing.assert_array_equal(t.affinities_.indices, ref.affinities_.indices)
        np.testing.assert_allclose(t.affinities_.data, ref.affinities_.data, rtol=1e-9, atol=0)
        assert np.isfinite(t.embedding_).all(), k
        assert abs(t.kl_divergence_ - ref.kl_divergence_) <= 0.01 * ref.kl_divergence_, k
        assert abs(trustworthiness(X * 10.0 ** k, t.embedding_, 5) - t_ref) <= 1e-12, k
        np.testing.assert_array_equal(t.embedding_, ref.embedding_)


def test_embedding_finite_at_extreme_scales(rng):
    """Scales beyond ±150 (up to 1e±300), where squared distances of the raw data under- or
    overflow: finite, and the same map as the unscaled data."""
    X = _blobs(rng, n=40, d=5)
    Y0 = TSNE(perplexity=5, max_iter=300, random_state=0).fit_transform(X)
    for c in SCALES:
        Y = TSNE(perplexity=5, max_iter=300, random_state=0).fit_transform(X * c)
        assert np.isfinite(Y).all(), c
        np.testing.assert_array_equal(Y, Y0)


def test_trustworthiness_does_not_depend_on_the_scale(rng):
    """Before: at 1e-155 every squared distance in X was 0, every rank a tie."""
    X = rng.standard_normal((60, 5))
    Y = X[:, :2] + 0.3 * rng.standard_normal((60, 2))
    t = trustworthiness(X, Y, 5)
    for c in (1e-155, 1e155):
        assert trustworthiness(X * c, Y, 5) == pytest.approx(t, abs=1e-12)
        assert trustworthiness(X, Y * c, 5) == pytest.approx(t, abs=1e-12)


def test_step_sizes_that_overflow_are_refused(rng):
    """learning_rate=1e308 made the map ±inf and the fit end in a ZeroDivisionError (Z = 0);
    the bound (|y| ≤ 1e100 whatever the data) refuses it by name, and accepts every usual value."""
    X = rng.standard_normal((40, 3))
    with pytest.raises(ValueError, match=r"^learning_rate: 1e\+308 .* beyond ±1e\+100"):
        TSNE(perplexity=5, max_iter=10, learning_rate=1e308).fit(X)
    with pytest.raises(ValueError, match=r"^early_exaggeration: 1e\+300 with learning_rate='auto'"):
        TSNE(perplexity=5, max_iter=10, early_exaggeration=1e300).fit(X)
    with pytest.raises(ValueError, match=r"^init: expected coordinates within"):
        TSNE(perplexity=5, max_iter=10, init=np.full((40, 2), 1e200)).fit(X)
    big = TSNE(perplexity=5, max_iter=10, learning_rate=1e90, early_exaggeration=100.0).fit(X)
    assert np.isfinite(big.embedding_).all() and np.isfinite(big.kl_divergence_)
    assert np.isfinite(TSNE(perplexity=5, max_iter=50, learning_rate=1e6).fit_transform(X)).all()


def test_complex_input_is_refused(rng):
    """Before: a complex init lost its imaginary part (a ComplexWarning), as did a complex P."""
    X = rng.standard_normal((40, 3))
    with pytest.raises(TypeError, match=r"^X: expected a real"):
        TSNE(perplexity=5).fit(X + 1j)
    with pytest.raises(TypeError, match=r"^init: expected a real"):
        TSNE(perplexity=5, init=np.ones((40, 2), complex)).fit(X)
    P = joint_probabilities(X, 5.0)
    with pytest.raises(TypeError, match=r"^P: expected real"):
        kl_divergence(P.astype(complex), X[:, :2])
    with pytest.raises(TypeError, match=r"^P: expected real"):
        kl_divergence(P.toarray() + 0j, X[:, :2])


@pytest.mark.parametrize("kw, exc, name", [
    ({"random_state": -1, "init": "random"}, ValueError, "random_state"),   # was: unnamed
    ({"random_state": 1.5}, TypeError, "random_state"),
    ({"verbose": "yes"}, TypeError, "verbose"),                               # was: int() message
    ({"progress": "False"}, ValueError, "progress"),
    ({"progress": 1}, TypeError, "progress"),
    ({"n_components": 2.0}, TypeError, "n_components"),
    ({"perplexity": "5"}, TypeError, "perplexity"),
    ({"early_exaggeration": 0.5}, ValueError, "early_exaggeration"),
    ({"learning_rate": np.inf}, TypeError, "learning_rate"),
    ({"max_iter": True}, TypeError, "max_iter"),
    ({"angle": "0.5"}, TypeError, "angle"),
    ({"method": ["exact"]}, ValueError, "method"),
    ({"init": np.ones((40, 2), bool)}, TypeError, "init"),
])
def test_bad_arguments_name_the_argument(rng, kw, exc, name):
    X = rng.standard_normal((40, 3))
    kw = {"perplexity": 5, "max_iter": 10, **kw}
    with pytest.raises(exc, match=rf"^{name}\b"):
        TSNE(**kw).fit(X)
    with pytest.raises(TypeError, match=r"^n_neighbors: expected an int"):
        trustworthiness(X, X[:, :2], 5.0)
