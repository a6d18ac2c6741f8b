"""Benchmark group "recurrent": forward + backward of LSTM and GRU layers (issue 12, item 13's
shapes), float32 and float64, against the same torch.nn module with the same weights, same thread
count, same process (benchlib.interleaved); and one training step of the character LSTM language
model.

Shapes (T, N, input, hidden): the small LSTM T100 B8 I32 H32 and the larger T64 B32 I64 H128;
GRU at the larger shape in float32. Engine: the layer's fast path (per layer and direction: one
GEMM for X Ω_xᵀ, the recurrence with the batch split over threads, one GEMM each for the
gradients of X, Ω_x, Ω_h). Peer: torch.nn.LSTM / GRU forward and autograd backward (oneDNN's
fused RNN).

Language-model step: Embedding(65, 64) → LSTM(64, 256, num_layers=2) → Linear(256, 65), batch 32,
T 64, float32, cross-entropy (mean over the 2048 tokens), Adam (lr 2e-3): zero_grad, forward,
loss, backward, step; torch's model from torch.nn, the engine's the library's
layers.language_models.RecurrentLM (what scripts/train_char_lm.py trains; with 65 tokens against
2048 positions its first LSTM layer reads the embedding table, layers.recurrent.TokenLookup), and
in a second row layers.Embedding, layers.LSTM, layers.Linear chained by hand as
tests/test_lstm_lm_end_to_end.py builds them; same weights on both sides.

"BLAS floor" rows: only the GEMMs the engine's kernels run for the case (X Ω_xᵀ, the per-step
products h_{t−1} Ω_hᵀ forward (into a small array, as the kernels write them) and ∂ℓ/∂Φ_t Ω_h
backward with the batch split as the kernels split it, the forward ones with Ω_h packed once
(engine.blas.gemm_packed_at) where the engine does so, else in the column blocks the LSTM uses
(layers.recurrent.step_blocks), ∂ℓ/∂X, ∂ℓ/∂Ω_x, ∂ℓ/∂Ω_h;
for the language model also its Linear head's three), same BLAS, threads and split, timed in the
same alternation: no kernel built on these products is faster.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # runs from a clone too
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402

CASES = [("LSTM", 100, 8, 32, 32, np.float32, False), ("LSTM", 100, 8, 32, 32, np.float64, False),
         ("LSTM", 64, 32, 64, 128, np.float32, True), ("LSTM", 64, 32, 64, 128, np.float64, True),
         ("GRU", 64, 32, 64, 128, np.float32, True)]
LM = dict(V=65, E=64, H=256, layers=2, N=32, T=64, lr=2e-3)
GATES = {"LSTM": 4, "GRU": 3}


_FLOOR = []


def _floor_kernel():
    """The products of one layer and direction, compiled once on first use (bench only)."""
    if _FLOOR:
        return _FLOOR[0]
    from numba import njit, prange

    from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_packed_at, packing_scratch

    @njit(parallel=True)
    def floor(X, Wih, Whh, WhhT, Wp, P, Y, dP, dh, dX, dWih, dWhh, packed, nf, nn, nb, kb, t_last, x_side, gemm,
              pack_x, kernel, n_rows, n_batch):
        T, N, I = X.shape
        GH, H = Whh.shape
        R = T * N
        for c in prange(n_rows):                       # Φ_x = X Ω_xᵀ, rows split
            lo, hi = c * R // n_rows, (c + 1) * R // n_rows
            if x_side:
                gemm_at(gemm, hi - lo, GH, I, 1.0, X, lo * I, I, NO_TRANS, Wih, 0, I, TRANS, 0.0, P, lo * GH, GH)
        for c in prange(n_batch):                      # forward steps: h_{t−1} Ω_hᵀ (h_0 = 0: t ≥ 1)
            lo, hi = c * N // n_batch, (c + 1) * N // n_batch
            # the LSTM writes the step's product to a scratch array (its gate loop adds it to Φ[t]),
            # the GRU to its Q (N, 3H)
            S = np.empty((hi - lo, GH), P.dtype)
            Xp = packing_scratch((hi - lo) * H, P)
            for t in range(1, T):
                if packed:                              # Ω_h packed once (engine.blas.gemm_packed_at)
                    S[:] = 0.0
                    gemm_packed_at(kernel, pack_x, hi - lo, GH, H, 1.0, Y, ((t - 1) * N + lo) * H, H, Wp, Xp, S, 0,
                                   GH)
                    continue
                for j in range(0, GH, nf):
                    if nn:
                        gemm_at(gemm, hi - lo, min(nf, GH - j), H, 1.0, Y, ((t - 1) * N + lo) * H, H, NO_TRANS,
                                WhhT, j, GH, NO_TRANS, 0.0, S, j, GH)
                    else:
                        gemm_at(gemm, hi - lo, min(nf, GH - j), H, 1.0, Y, ((t - 1) * N + lo) * H, H, NO_TRANS,
                                Whh, j * H, H, TRANS, 0.0, S, j, GH)
        for c in prange(n_batch):                      # backward steps: ∂ℓ/∂h_{t−1} = ∂ℓ/∂Φ[t] Ω_h, t ≥ t_last
            lo, hi = c * N // n_batch, (c + 1) * N // n_batch
            for t in range(T - 1, t_last - 1, -1):
                for j in range(0, H, nb):
                    for k in range(0, GH, kb):
                        gemm_at(gemm, hi - lo, min(nb, H - j), min(kb, GH - k), 1.0, dP, (t * N + lo) * GH + k,
                                GH, NO_TRANS, Whh, k * H + j, H, NO_TRANS, 0.0 if k == 0 else 1.0, dh,
                                lo * H + j, H)
        for c in prange(n_rows):                       # ∂ℓ/∂X rows; ∂ℓ/∂Ω_x, ∂ℓ/∂Ω_h over Ω's rows
            lo, hi = c * R // n_rows, (c + 1) * R // n_rows
            jl, jh = c * GH // n_rows, (c + 1) * GH // n_rows
            if x_side:
                gemm_at(gemm, hi - lo, I, GH, 1.0, dP, lo * GH, GH, NO_TRANS, Wih, 0, I, NO_TRANS, 0.0, dX, lo * I, I)
                gemm_at(gemm, jh - jl, I, R, 1.0, dP, jl, GH, TRANS, X, 0, I, NO_TRANS, 1.0, dWih, jl * I, I)
            gemm_at(gemm, jh - jl, H, R - N, 1.0, dP, N * GH + jl, GH, TRANS, Y, 0, H, NO_TRANS,
                    1.0, dWhh, jl * H, H)
    _FLOOR.append(floor)
    return floor


def floor_products(kind, T, N, I, H, dtype, seed=0, x_side=True):
    """A closure running the GEMMs alone of one layer's forward + backward (see the docstring);
    x_side=False leaves out X Ω_xᵀ, ∂ℓ/∂X and ∂ℓ/∂Ω_x (a first layer reading an embedding table)."""
    from engine.blas import gemm_for, pack_weight, packed_for
    from engine.memory import huge_empty
    from engine.threads import chunks_for, pool
    from layers import recurrent
    from layers.recurrent import MIN_STEPS_FOR_COPY, _batch_chunks, step_blocks
    GH = GATES[kind] * H
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, N, I)).astype(dtype)
    Wih = rng.standard_normal((GH, I)).astype(dtype) * 0.1
    Whh = rng.standard_normal((GH, H)).astype(dtype) * 0.1
    P, dP = np.empty((T, N, GH), dtype), rng.standard_normal((T, N, GH)).astype(dtype)
    Y, dh, dX = rng.standard_normal((T, N, H)).astype(dtype), np.empty((N, H), dtype), np.empty_like(X)
    dWih, dWhh = np.zeros_like(Wih), np.zeros_like(Whh)
    n_rows = chunks_for(T * N, row_cost=GH * I) if x_side else chunks_for(T * N, row_cost=GH * H)
    n_batch = _batch_chunks(N, T, GH, H)
    # the LSTM's per-step products as the engine runs them (Ω_h packed once, or in blocks), and without an initial state no product
    # with h_0 (forward) or for ∂ℓ/∂h_0 (backward); the GRU's step products are whole, and it
    # computes ∂ℓ/∂h_0 (t_last = 0)
    nf, nn, nb, kb = step_blocks(-(-N // n_batch), H, GH, dtype) if kind == "LSTM" else (GH, True, H, GH)
    t_last = 1 if kind == "LSTM" else 0
    packed, pack_w, pack_x, pk = packed_for(dtype)
    packed = packed and T >= MIN_STEPS_FOR_COPY and recurrent.PACKED_STEPS
    kernel, gemm = _floor_kernel(), gemm_for(dtype)
    # the recurrence reads Ω_h and Ω_hᵀ from copies on huge pages, as the kernels do (Workspace.recurrent_weight)
    Wh, WhhT = huge_empty(Whh.shape, dtype), huge_empty(Whh.shape[::-1], dtype)
    Wh[...], WhhT[...] = Whh, Whh.T
    Wp = huge_empty(Whh.shape, dtype)
    if packed:
        pack_weight(pack_w, Whh, Wp)
    Whh = Wh

    def floor():
        with pool(max(n_rows, n_batch)):
            kernel(X, Wih, Whh, WhhT, Wp, P, Y, dP, dh, dX, dWih, dWhh, packed, nf, nn, nb, kb, t_last, x_side, gemm,
                   pack_x, pk, n_rows, n_batch)
    return floor


def cases(kind, T, N, I, H, dtype, seed=0, with_floor=False):
    import layers
    rng = np.random.default_rng(seed)
    layer = getattr(layers, kind)(I, H, dtype=dtype, rng=seed)
    x = rng.standard_normal((T, N, I)).astype(dtype)
    dy = rng.standard_normal((T, N, H)).astype(dtype)

    def engine_step():
        layer.forward(x)
        layer.backward(dy)
    fns = {"engine": engine_step}
    if with_floor:
        fns["floor"] = floor_products(kind, T, N, I, H, dtype, seed)
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tm = getattr(torch.nn, kind)(I, H).to(tdt)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_step():
            out, _ = tm(tx)
            out.backward(tdy)
        fns["PyTorch"] = torch_step
    return fns


def lm_cases(V, E, H, layers, N, T, lr, dtype=np.float32, seed=0, composed=False):
    """One Adam training step of the character LSTM language model, engine and PyTorch, from the
    same weights and the same batch (ids drawn uniformly; the step's cost does not depend on them).
    The engine's model is layers.language_models.RecurrentLM (what scripts/train_char_lm.py trains;
    its first LSTM layer reads the embedding table directly, TokenLookup), or with composed=True
    Embedding, LSTM and Linear chained by hand as tests/test_lstm_lm_end_to_end.py builds it."""
    from engine.core import Layer
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam
    from layers import LSTM, Embedding, Linear
    from layers.language_models import RecurrentLM

    class CharLM(Layer):
        """Embedding → LSTM → Linear, time-major: idx (T, N) -> logits (T·N, V)."""

        def __init__(self, rng):
            self.encoder = Embedding(V, E, dtype=dtype, rng=rng)
            self.rnn = LSTM(E, H, num_layers=layers, dtype=dtype, rng=rng)
            self.decoder = Linear(H, V, dtype=dtype, rng=rng)

        def forward(self, idx, train=True):
            y, _ = self.rnn.forward(self.encoder.forward(idx, train=train), train=train)
            return self.decoder.forward(y.reshape(-1, H), train=train)

        def backward(self, dlogits):
            dy = self.decoder.backward(dlogits).reshape(T, N, H)
            self.encoder.backward(self.rnn.backward(dy))

    class LibraryLM:
        """RecurrentLM with logits flattened to (T·N, V) for the loss."""

        def __init__(self, rng):
            self.lm = RecurrentLM(V, E, H, num_layers=layers, mode="LSTM", dtype=dtype, rng=rng)

        def parameters(self):
            return self.lm.parameters()

        def state_dict(self):
            return self.lm.state_dict()

        def forward(self, idx):
            return self.lm.forward(idx)[0].reshape(-1, V)

        def backward(self, dlogits):
            self.lm.backward(dlogits.reshape(T, N, V))

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (T, N))
    target = rng.integers(0, V, (T, N))
    model = (CharLM if composed else LibraryLM)(np.random.default_rng(seed + 1))
    opt = Adam(model.parameters(), lr=lr)
    loss_fn = CrossEntropyLoss()

    def engine_step():
        opt.zero_grad()
        loss_fn.forward(model.forward(idx), target.reshape(-1))
        model.backward(loss_fn.backward())
        opt.step()
    fns = {"engine": engine_step}

    from engine.blas import gemm_for
    from engine.threads import chunks_for, parallel_call
    from layers.dense import linear_backward, linear_forward
    # the first layer's input side: X Ω_xᵀ, ∂ℓ/∂X, ∂ℓ/∂Ω_x over T·N rows when composed; from the
    # table (RecurrentLM): E Ω_xᵀ, Sᵀ E, S Ω_x over V rows (the gather and the sum by token are not
    # products)
    floors = [floor_products("LSTM", T, N, E if k == 0 else H, H, dtype, seed + k, x_side=composed or k > 0)
              for k in range(layers)]
    Wo = rng.standard_normal((V, H)).astype(dtype) * 0.1
    Yh = rng.standard_normal((T * N, H)).astype(dtype)
    dF = rng.standard_normal((T * N, V)).astype(dtype)
    dWo, dbo, bo = np.zeros_like(Wo), np.zeros(V, dtype), np.zeros(V, dtype)
    Et, Wx = rng.standard_normal((V, E)).astype(dtype), rng.standard_normal((4 * H, E)).astype(dtype)
    S, dWx = rng.standard_normal((V, 4 * H)).astype(dtype), np.zeros((4 * H, E), dtype)
    nh, g = chunks_for(T * N, row_cost=H * V), gemm_for(dtype)

    def floor():
        for f in floors:
            f()
        if not composed:
            Et @ Wx.T
            np.add(dWx, S.T @ Et, out=dWx)
            S @ Wx
        parallel_call(linear_forward, nh, Yh, Wo, bo, g)
        parallel_call(linear_backward, nh, dF, Yh, Wo, dWo, dbo, True, g)
    fns["floor"] = floor

    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64

        class TorchCharLM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = torch.nn.Embedding(V, E)
                self.rnn = torch.nn.LSTM(E, H, num_layers=layers)
                self.decoder = torch.nn.Linear(H, V)

            def forward(self, idx):
                y, _ = self.rnn(self.encoder(idx))
                return self.decoder(y.reshape(-1, H))
        tm = TorchCharLM().to(tdt)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
        topt = torch.optim.Adam(tm.parameters(), lr=lr)
        tidx, ttarget = torch.from_numpy(idx), torch.from_numpy(target.reshape(-1))

        def torch_step():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tm(tidx), ttarget).backward()
            topt.step()
        fns["PyTorch"] = torch_step
    return fns


def run(quick=False):
    rows = []
    for kind, T, N, I, H, dtype, with_floor in CASES:
        if quick:
            T, N, I, H = 5, 2, 3, 4
        res = interleaved(cases(kind, T, N, I, H, dtype, with_floor=with_floor), repeats=5 if quick else 30)
        label = f"{kind} T{T} B{N} I{I} H{H} fwd+bwd, {np.dtype(dtype).name}"
        rows.append(row("recurrent", label, res["engine"], "PyTorch", res.get("PyTorch")))
        if with_floor:
            rows.append(row("recurrent", f"{label}: BLAS floor, its GEMMs alone", res["floor"], "PyTorch",
                            res.get("PyTorch")))
    lm = dict(LM, V=7, E=3, H=4, N=2, T=5) if quick else LM
    for composed in (False, True):
        res = interleaved(lm_cases(**lm, composed=composed), repeats=5 if quick else 30)
        label = (f"char LSTM LM train step (Emb {lm['V']}x{lm['E']}, {lm['layers']}-layer LSTM {lm['H']}, Linear"
                 f"{': layers composed by hand' if composed else ''}), B{lm['N']} T{lm['T']}, Adam, float32")
        rows.append(row("recurrent", label, res["engine"], "PyTorch", res.get("PyTorch")))
        rows.append(row("recurrent", f"{label}: BLAS floor, its GEMMs alone", res["floor"], "PyTorch",
                        res.get("PyTorch")))
    return rows


if __name__ == "__main__":
    main(run)
