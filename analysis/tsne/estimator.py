"""`TSNE`: the estimator, with scikit-learn's interface (`TSNE(...).fit_transform(X)`).

What it does, and where it comes from
-------------------------------------
van der Maaten & Hinton (2008), "Visualizing data using t-SNE", JMLR 9 (called [vdMH08]) and
van der Maaten (2014), "Accelerating t-SNE using tree-based algorithms", JMLR 15 ([vdM14]).

1. Affinities (`affinities.py`): Gaussian conditional p_{j|i} over the k = ⌊3·perplexity⌋ exact
   nearest neighbours ([vdM14] §4.1; all N - 1 points for method="exact", as [vdMH08]), β_i by
   bisection to the requested perplexity ([vdMH08] §3.1), p_ij = (p_{j|i} + p_{i|j}) / 2N.
2. Map: Student-t with one degree of freedom ([vdMH08] §3.3), for any n_components.
3. Gradient 4 Σ_j (p_ij - q_ij) w_ij (y_i - y_j) ([vdMH08] eq. 5): attractive part over the sparse
   P, repulsive part exactly (O(N²)) or by Barnes-Hut with θ = angle ([vdM14] §4.2).
4. Optimisation ([vdMH08] §3.4, [vdM14] §5): gradient descent with momentum 0.5 for the first
   250 iterations and 0.8 afterwards, early exaggeration α = 12 over the same 250 iterations,
   per-coordinate gains (+0.2 / ×0.8, floor 0.01), max_iter = 1000 iterations in total.
5. Initialisation: "pca" (default), the first principal components of X scaled to a standard
   deviation of 1e-4 along the first; "random", N(0, 1e-4² I); or an (N, n_components) array.

Defaults and differences, and why
---------------------------------
- perplexity 30, early_exaggeration 12 over the first 250 iterations, momentum 0.5 → 0.8, gains:
  as the Barnes-Hut reference implementation of [vdM14], scikit-learn and openTSNE (openTSNE
  uses momentum 0.8 in both phases by default). [vdMH08] exaggerated by 4 over 50 iterations
  only; the longer, stronger exaggeration lets clusters form before they are pushed apart.
- max_iter 1000 in total, as scikit-learn (openTSNE: 250 + 500 by default).
- learning_rate "auto" = max(N / (4 α), 50) during early exaggeration and max(N / 4, 50) after it:
  the rule η = N / α of Belkina et al. (2019, Nature Comm. 10) applied to the exaggeration in
  force, divided by 4 because our gradient carries the factor 4 of [vdMH08] eq. 5 that openTSNE's
  omits; this is openTSNE's "auto". scikit-learn's "auto" keeps max(N / (4·12), 50) for all
  iterations; after exaggeration that step is 12 times smaller and the descent has not converged
  at 1,000 iterations (digits: KL 0.760 instead of 0.741, the same trustworthiness).
  [vdMH08] used η = 100 and [vdM14] η = 200, too small for large N (slow expansion,
  fragmented clusters). `learning_rate_` holds the final-phase value.
- Neighbours: exact, k = ⌊3·perplexity⌋ as [vdM14] and openTSNE (scikit-learn takes
  ⌊3·perplexity + 1⌋; openTSNE approximates them with Annoy for large N). At least
  3·perplexity + 1 points are required so that k neighbours exist.
- Degrees of freedom: always 1, as [vdMH08] and openTSNE; scikit-learn uses
  max(n_components - 1, 1), i.e. 2 for three-dimensional maps (after van der Maaten 2009,
  "Learning a parametric embedding by preserving local structure").
- Initial scale 1e-4 for "pca" and "random" (both peers). [vdMH08] samples N(0, 10⁻⁴ I) (a
  standard deviation of 1e-2); the smaller scale makes "random" consistent with "pca" and does
  not change the result, which early exaggeration expands.
- Barnes-Hut leaves hold up to 16 points, summed exactly when the leaf is opened ([vdM14] splits
  down to one point per cell); this is at least as accurate and faster (see optimize.LEAF_SIZE).
- No early stopping (scikit-learn stops when the gradient norm falls below 1e-7 or after 300
  iterations without progress): exactly max_iter iterations run, so timings and results compare
  at equal iterations; `n_iter_` is max_iter.
- `kl_divergence_` is the KL divergence of the final embedding with the method's Z (Barnes-Hut's
  estimate for method="barnes_hut", like scikit-learn); `metrics.kl_divergence(P, Y)` gives it
  with the exact Z, to compare embeddings made by different programs.

Scale: the result does not depend on the scale or position of X. X is centred and divided by a
power of two before anything else (affinities.normalise: exact, no rounding), so X·2^k gives the
bit-identical embedding for any k, and X·c for any other c > 0 the same affinities and PCA map up
to rounding (~1e-13 relative at most; ties between distances, as in integer data, are kept
ties: see affinities). The descent is chaotic (a 1e-15 change in P or Y₀ grows about 2x per
iteration and changes the final map and its KL divergence by as much as two seeds do), so before
it starts P is rounded to 30 significant bits (affinities.snap, ≤ 9.3e-10 relative) and Y₀ to a
grid 30 bits below its largest coordinate (affinities.snap_grid): X·c then gives the
bit-identical P, Y₀ and embedding too, except when a value lies within its rounding noise of a
rounding boundary (measured: 2 of 1,000 scaled fits of 40 and 200 points; the embedding then
differs as for two seeds). Learning rates and exaggerations that could carry the map out of
the float range are refused (see `learning_rate`); complex input is refused, not cast.

Progress: `progress="auto"` shows a bar over the iterations (KL divergence as its postfix) on a
terminal or in Jupyter and nothing in pipes or CI (engine.progress); it is removed when the fit
ends. `verbose` keeps scikit-learn's meaning: 0 prints nothing, > 0 prints the affinity step,
every 50th iteration and the result, as lines on stdout that stay in logs.

Threads: below 4,096 points the fit runs on one thread (see `_SERIAL_BELOW`), above on the
engine's thread count.

Determinism: every parallel kernel writes disjoint per-point outputs and all sums over points are
added in index order, so the same input and seed give bit-identical embeddings whatever the
number of threads.
"""
import sys
import time

import numpy as np
import scipy.sparse as sp

from engine.checks import check_bool, check_choice, check_float, check_int, check_rng
from engine.progress import progress

from ._common import num_threads, pool
from .affinities import joint_probabilities as _joint
from .affinities import normalise, snap_grid
from .exact import p_log_p
from .metrics import _as_float_matrix
from .optimize import run, run_2d

_EXAGGERATION_ITER = 250
_REPORT_EVERY = 50
# Below this many points the fit runs on one thread. An iteration then holds ~1-4 ms of work in
# one parallel region, and on a busy machine waiting for the second thread to be scheduled costs
# more than it saves. Measured 2026-11-21 (2 cores, load ~3.5 from other jobs), 1,000 iterations:
# digits (1,797 points) 2.1-2.8 s on one thread vs 8.4 s on two (1.5 s on two when the machine
# was idle); 3,000 points / 300 iterations 1.7 vs 2.9 s; 6,000 points 5.0 vs 5.9 s. Results do
# not depend on the thread count (bit-identical), only the time does.
_SERIAL_BELOW = 4096
# Bound on the map's coordinates: squared distances (≤ 4·d·1e200) stay finite and Z ≥ N·1e-201 > 0.
# `_check_steps` refuses learning rates, exaggerations and initial maps that could leave it.
_MAP_LIMIT = 1e100


def _neighbours(N, perplexity, method):
    return N - 1 if method == "exact" else int(3.0 * perplexity)


def _check_points(X, perplexity):
    """X as a finite float64 matrix with enough points for the perplexity, then `normalise`d
    (centred and scaled by a power of two: the result does not depend on X's scale)."""
    X = _as_float_matrix("X", X)
    N = X.shape[0]
    need = int(np.floor(3.0 * perplexity)) + 1
    if N < need:
        raise ValueError(f"X: t-SNE with perplexity={perplexity:g} needs at least 3·perplexity + 1 = {need} "
                         f"points (k = 3·perplexity neighbours per point), got {N}; lower the perplexity")
    return normalise(X)


def joint_probabilities(X, perplexity=30.0, method="barnes_hut"):
    """The symmetric affinities P of t-SNE as a scipy.sparse CSR matrix (N, N), summing to 1.

    method="barnes_hut": over the ⌊3·perplexity⌋ exact nearest neighbours; "exact": all points.
    Independent of the scale and position of X (see affinities.normalise).
    """
    perplexity = _check_perplexity(perplexity)
    check_choice("method", method, ("barnes_hut", "exact"))
    X = _check_points(X, perplexity)
    N = X.shape[0]
    indptr, indices, data, _H = _joint(X, perplexity, _neighbours(N, perplexity, method), num_threads())
    return sp.csr_matrix((data, indices, indptr), shape=(N, N))


def _check_perplexity(perplexity):
    """A number >= 1 (an effective number of neighbours)."""
    return check_float("perplexity", perplexity, low=1.0)


def _check_steps(lr, lr_late, alpha, max_iter, y0_max, learning_rate):
    """Refuse step sizes that could carry the map beyond ±_MAP_LIMIT (then squared distances
    overflow and the gradient is NaN). Per coordinate |∂C/∂y| ≤ α + 2 ≤ 2(α + 1) (|p w Δ| and
    |w² Δ|/Z are at most ½ per unit of mass), the gains grow by at most 0.2 per iteration and
    momentum ≤ 0.8 sums to at most 5 steps, so after T iterations
        |y| ≤ |y_0| + 10 · max(η (α + 1), 2 η_late) · (T + 0.1 T²).
    A ValueError names the argument that makes the bound too large."""
    reach = 10.0 * max(lr * (alpha + 1.0), 2.0 * lr_late) * (max_iter + 0.1 * max_iter * max_iter)
    if y0_max + reach <= _MAP_LIMIT:
        return
    allowed = (_MAP_LIMIT - y0_max) / (10.0 * (max_iter + 0.1 * max_iter * max_iter))
    if learning_rate == "auto" or alpha + 1.0 > lr:
        raise ValueError(f"early_exaggeration: {alpha:g} with learning_rate={learning_rate!r} over max_iter="
                         f"{max_iter} iterations can move the map beyond ±{_MAP_LIMIT:g}, where squared "
                         f"distances overflow; expected learning_rate·(early_exaggeration + 1) <= {allowed:.3g}")
    raise ValueError(f"learning_rate: {lr:g} with early_exaggeration={alpha:g} over max_iter={max_iter} "
                     f"iterations can move the map beyond ±{_MAP_LIMIT:g}, where squared distances "
                     f"overflow; expected learning_rate·(early_exaggeration + 1) <= {allowed:.3g}")


class TSNE:
    """t-distributed Stochastic Neighbor Embedding ([vdMH08], Barnes-Hut by [vdM14]).

    Parameters (names and defaults as scikit-learn's `sklearn.manifold.TSNE`)
    ----------
    n_components : int, dimension of the map (1, 2 or 3 for Barnes-Hut; any for "exact").
    perplexity : float >= 1, effective number of neighbours; needs N >= 3·perplexity + 1.
    early_exaggeration : float >= 1, α multiplying P during the first 250 iterations.
    learning_rate : "auto" (max(N / (4α), 50) while exaggerated, max(N / 4, 50) after) or a
        positive float used throughout. Learning rates and exaggerations that could carry the map
        beyond ±1e100 in max_iter iterations (where squared distances overflow) are refused
        with a ValueError naming the argument (`_check_steps`; about η (α + 1) > 1e94 at 1,000
        iterations, nothing a fit would use).
    max_iter : int >= 1, total number of iterations (exaggerated ones included).
    init : "pca", "random" or an array (N, n_components) of real numbers within ±5e99; the
        initial map is rounded to a grid 30 bits below its largest coordinate (snap_grid).
    method : "barnes_hut" (O(N log N) per iteration) or "exact" (O(N²), the reference).
    angle : float in [0, 1], θ of Barnes-Hut; 0 gives the exact forces.
    random_state : None, int >= 0 or numpy.random.Generator, for init="random".
    verbose : int; > 0 prints the affinity step and every 50 iterations (iteration, KL, gradient
        norm, elapsed seconds) on stdout.
    progress : "auto", True or False (not in scikit-learn), a progress bar over the iterations:
        "auto" shows it on a terminal or in Jupyter, not in pipes or CI (engine.progress).

    Attributes after `fit`: embedding_ (N, n_components), kl_divergence_ (float), n_iter_ (int),
    learning_rate_ (float), affinities_ (scipy.sparse CSR P), kl_history_ (list of
    (iteration, KL) every 50 iterations; KL of the unexaggerated P at that iteration's start).
    """

    def __init__(self, n_components=2, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto",
                 max_iter=1000, init="pca", method="barnes_hut", angle=0.5, random_state=None, verbose=0,
                 progress="auto"):
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.init = init
        self.method = method
        self.angle = angle
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        """Every argument, with engine.checks' named errors; returns them normalised."""
        nc = check_int("n_components", self.n_components, low=1)
        method = check_choice("method", self.method, ("barnes_hut", "exact"))
        if method == "barnes_hut" and nc > 3:
            raise ValueError(f"n_components: method='barnes_hut' supports 1, 2 or 3 components (a binary, "
                             f"quad- or octree), got {nc}; use method='exact' for more")
        _check_perplexity(self.perplexity)
        check_float("early_exaggeration", self.early_exaggeration, low=1.0)
        if isinstance(self.learning_rate, str):
            if self.learning_rate != "auto":
                raise ValueError(f"learning_rate: expected 'auto' or a positive number, got {self.learning_rate!r}")
        else:
            check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_int("max_iter", self.max_iter, low=1)
        check_float("angle", self.angle, low=0.0, high=1.0)
        if isinstance(self.init, str):
            if self.init not in ("pca", "random"):
                raise ValueError(f"init: expected 'pca', 'random' or an array (N, n_components), got {self.init!r}")
        elif not isinstance(self.init, np.ndarray):
            raise TypeError(f"init: expected 'pca', 'random' or a numpy.ndarray, got {type(self.init).__name__}")
        elif self.init.dtype.kind not in "fiu":       # complex: the imaginary part would be dropped
            raise TypeError(f"init: expected a real (float or integer) array, got dtype {self.init.dtype}")
        check_rng("random_state", self.random_state)
        if not isinstance(self.verbose, (bool, np.bool_)):   # scikit-learn's verbose: an int (or a bool)
            check_int("verbose", self.verbose, low=0)
        if isinstance(self.progress, str):
            if self.progress != "auto":
                raise ValueError(f"progress: expected True, False or 'auto', got {self.progress!r}")
        else:
            try:
                check_bool("progress", self.progress)
            except TypeError:
                raise TypeError(f"progress: expected True, False or 'auto', got {self.progress!r}") from None

    def _initial_map(self, X):
        """Y₀ (N, n_components) from `init` for the normalised X, rounded to a grid 30 bits below
        its largest coordinate (affinities.snap_grid), so that the last-bit rounding of X's PCA
        does not reach the chaotic descent."""
        return snap_grid(self._initial_map_unrounded(X))

    def _initial_map_unrounded(self, X):
        N, D = X.shape
        nc = int(self.n_components)
        if isinstance(self.init, np.ndarray):
            Y0 = self.init
            if Y0.shape != (N, nc):
                raise ValueError(f"init: expected an array of shape ({N}, {nc}), got {Y0.shape}")
            Y0 = np.array(Y0, dtype=np.float64, order="C")
            if not np.isfinite(Y0).all():
                raise ValueError("init: expected finite real values")
            if np.abs(Y0).max() > 0.5 * _MAP_LIMIT:
                raise ValueError(f"init: expected coordinates within ±{0.5 * _MAP_LIMIT:g} (squared distances "
                                 f"of the map must not overflow), got {np.abs(Y0).max():g}")
            return Y0
        if self.init == "random":
            return 1e-4 * check_rng("random_state", self.random_state).standard_normal((N, nc))
        # "pca": eigenvectors of the covariance, sign fixed so each one's largest entry is > 0
        if nc > D:
            raise ValueError(f"init: 'pca' gives at most n_features = {D} components, n_components is {nc}; "
                             "use init='random'")
        Xc = X - X.mean(axis=0)
        C = Xc.T @ Xc
        evals, evecs = np.linalg.eigh(C)
        V = evecs[:, ::-1][:, :nc].copy()
        for c in range(nc):
            if V[np.argmax(np.abs(V[:, c])), c] < 0:
                V[:, c] = -V[:, c]
        Y0 = Xc @ V
        sd = Y0[:, 0].std()
        if sd == 0:
            raise ValueError("X: all points are identical along every direction; PCA initialisation impossible")
        return np.ascontiguousarray(Y0 * (1e-4 / sd))

    # ------------------------------------------------------------------ fit
    def fit_transform(self, X, y=None):
        """Embed X (N, D) and return the embedding (N, n_components), also kept as `embedding_`."""
        self._check_params()
        X = _check_points(X, self.perplexity)
        if X.shape[0] >= _SERIAL_BELOW:
            return self._fit(X)
        with pool(1):
            return self._fit(X)

    def _fit(self, X):
        N = X.shape[0]
        Y = self._initial_map(X)  # validates init before the expensive steps
        exact = self.method == "exact"
        alpha = float(self.early_exaggeration)
        if self.learning_rate == "auto":  # Belkina et al. (2019) per phase: N / (4 α_current)
            lr = max(N / (4.0 * alpha), 50.0)
            lr_late = max(N / 4.0, 50.0)
        else:
            lr = lr_late = float(self.learning_rate)
        _check_steps(lr, lr_late, alpha, int(self.max_iter), float(np.abs(Y).max()), self.learning_rate)
        verbose = int(self.verbose) if self.verbose else 0
        t0 = time.perf_counter()
        with progress(total=self.max_iter, desc="t-SNE affinities", enabled=self.progress, leave=False) as bar:
            def log(text):  # a line on stdout, above the bar if one is shown
                bar.write(f"[t-SNE] {text}, {time.perf_counter() - t0:.2f} s", file=sys.stdout)
                sys.stdout.flush()

            k = _neighbours(N, self.perplexity, self.method)
            indptr, indices, data, H = _joint(X, float(self.perplexity), k, num_threads())
            plogp = p_log_p(data)
            if verbose:
                log(f"affinities: N={N}, k={k}, mean perplexity {np.exp(H).mean():.4f} "
                    f"(target {float(self.perplexity):g}), nnz(P)={data.size}")
            bar.set_description("t-SNE")

            U = np.zeros_like(Y)
            gains = np.ones_like(Y)
            angle = float(self.angle)
            history = []
            fast_2d = Y.shape[1] == 2 and not exact

            def step(Y, U, gains, n, exaggeration, momentum, rate):
                if fast_2d:
                    return run_2d(Y, U, gains, indptr, indices, data, plogp, n, exaggeration, momentum, rate,
                                  angle)
                return run(Y, U, gains, indptr, indices, data, plogp, n, exaggeration, momentum, rate, angle,
                           exact)

            n_ex = min(_EXAGGERATION_ITER, self.max_iter)
            it = 0
            while it < self.max_iter:
                early = it < n_ex
                phase_end = n_ex if early else self.max_iter
                n = min(_REPORT_EVERY - it % _REPORT_EVERY, phase_end - it)
                kl, gnorm = step(Y, U, gains, n, alpha if early else 1.0, 0.5 if early else 0.8,
                                 lr if early else lr_late)
                it += n
                history.append((it - 1, float(kl)))
                bar.set_postfix_str(f"KL {kl:.4f}{' (exaggerated)' if early else ''}", refresh=False)
                bar.update(n)
                if verbose and (it % _REPORT_EVERY == 0 or it == self.max_iter):
                    log(f"iteration {it:5d}: KL {kl:.6f}{' (exaggeration phase)' if early else ''}, "
                        f"gradient norm {gnorm:.3e}")

            # KL of the final map: one more gradient evaluation, on copies
            kl_final, _ = step(Y.copy(), U.copy(), gains.copy(), 1, 1.0, 0.8, lr_late)
        self.embedding_ = Y
        self.kl_divergence_ = float(kl_final)
        self.n_iter_ = int(self.max_iter)
        self.learning_rate_ = lr_late
        self.kl_history_ = history
        self.affinities_ = sp.csr_matrix((data, indices, indptr), shape=(N, N))
        if verbose:
            print(f"[t-SNE] done: KL {kl_final:.6f} after {self.max_iter} iterations, "
                  f"{time.perf_counter() - t0:.2f} s", flush=True)
        return Y

    def fit(self, X, y=None):
        """Fit and return self (the embedding is in `embedding_`)."""
        self.fit_transform(X)
        return self
