"""Sampling tokens from a language model's logits (004 §5.4: an autoregressive model generates
one token at a time, each drawn from p(x_t | x_<t) and fed back as the next input).

    ids = generate(step_fn, start_ids, max_new_tokens=200, temperature=0.8, top_k=20, rng=0)

Temperature T > 0 divides the logits: p_i = softmax(f / T)_i = exp((f_i − max f) / T) / Σ_j ….
T = 1 samples the model's own distribution, T → 0 approaches the arg-max (greedy decoding),
T > 1 flattens it. top_k keeps the k largest logits (others get probability 0) and renormalises;
top_k=1 is greedy decoding exactly (ties go to the first index, as np.argmax). The max-shift is
taken before dividing by T, so tiny temperatures neither overflow nor warn.

Each row draws one uniform u from the seeded Generator (`engine.checks.check_rng`: an int seed, a
Generator or None) and takes the first index whose cumulative probability exceeds u · Σp
(inverse-CDF sampling): a fixed seed gives the same tokens on every machine and a token of
probability 0 is never drawn. Logits may hold −inf (tokens masked out); NaN and +inf are refused.
"""
import numpy as np

from .checks import check_array, check_float, check_int, check_rng
from .core import no_grad


def _check_logits(name, logits):
    if not isinstance(logits, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(logits).__name__}")
    logits = check_array(name, logits, ndim=(1, 2), finite=False)
    if np.isnan(logits).any() or (logits == np.inf).any():
        raise ValueError(f"{name}: expected finite logits (or -inf for masked tokens), got NaN "
                         "or +inf")
    rows = logits.reshape(-1, logits.shape[-1])
    if (rows == -np.inf).all(axis=1).any():
        raise ValueError(f"{name}: expected at least one finite logit per row, got a row of "
                         "only -inf")
    return logits


def _check_top_k(top_k, vocab):
    if top_k is None:
        return None
    return check_int("top_k", top_k, low=1, high=vocab)


def probabilities(logits, temperature=1.0, top_k=None):
    """softmax(logits / temperature) over the last axis, restricted to the top_k largest logits
    of each row (the others 0) and renormalised: the distribution `sample_next` draws from.
    logits: (V,) or (N, V) float32/float64; returns float64 of the same shape."""
    logits = _check_logits("logits", logits)
    temperature = check_float("temperature", temperature, low=0.0, low_open=True)
    top_k = _check_top_k(top_k, logits.shape[-1])
    return _probabilities(logits, temperature, top_k)


def _probabilities(logits, temperature, top_k):
    f = np.atleast_2d(logits).astype(np.float64)
    if top_k is not None and top_k < f.shape[1]:
        # the k largest of each row, ties to the first index (top_k=1 equals np.argmax)
        keep = np.argsort(-f, axis=1, kind="stable")[:, :top_k]
        masked = np.full_like(f, -np.inf)
        np.put_along_axis(masked, keep, np.take_along_axis(f, keep, axis=1), axis=1)
        f = masked
    m = f.max(axis=1, keepdims=True)
    with np.errstate(over="ignore", under="ignore"):
        z = (f - m) / temperature              # ≤ 0; −inf for masked tokens; 0 at the max
        p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p.reshape(logits.shape)


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """Draw one token id per row of `logits`.

    logits:      (N, V) (one row per sequence) or (V,), float32 or float64; −inf masks a token.
    temperature: a number > 0 dividing the logits (→ 0: greedy; 1: the model's distribution).
    top_k:       None, or an int in [1, V]: sample among the k largest logits only.
    rng:         an int seed, a numpy.random.Generator (advanced: one uniform per row) or None.
    Returns an int64 array of shape (N,), or a Python int for 1-D logits.
    """
    logits = _check_logits("logits", logits)
    temperature = check_float("temperature", temperature, low=0.0, low_open=True)
    top_k = _check_top_k(top_k, logits.shape[-1])
    gen = check_rng("rng", rng)
    return _sample(logits, temperature, top_k, gen)


def _sample(logits, temperature, top_k, gen):
    p = _probabilities(logits, temperature, top_k).reshape(-1, logits.shape[-1])
    cdf = np.cumsum(p, axis=1)
    u = gen.random(p.shape[0]) * cdf[:, -1]
    ids = (cdf <= u[:, None]).sum(axis=1)                  # first index with cdf > u
    # u · Σp may round up to Σp: fall back to the last token of nonzero probability
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)
    ids = np.minimum(ids, last).astype(np.int64)
    return int(ids[0]) if logits.ndim == 1 else ids


def generate(step_fn, start_ids, max_new_tokens, temperature=1.0, top_k=None, rng=None):
    """Autoregressive generation: append `max_new_tokens` tokens to each sequence of `start_ids`,
    each drawn by `sample_next` from `step_fn`'s logits, all under `engine.no_grad()` (the
    model's forwards record nothing for a backward).

    step_fn(ids) -> logits: given the sequences so far, an int64 array (B, t), return the logits
        of the next token, (B, V) float (the same V every call). It is called once per new token,
        first with the start ids, then with one more column each time. A GPT-style model looks
        at the last block of columns, `ids[:, -block_size:]`, and returns its last position's
        logits; a recurrent language model keeps its state between calls (a closure or an
        object) and feeds only the newest column, `ids[:, -1]`, after a first call that reads
        the whole prompt (t == start length), e.g.

            state = None
            def step_fn(ids):
                nonlocal state
                x = ids if state is None else ids[:, -1:]
                out, state = lstm.forward(embed.forward(x), state)   # (B, t, H) batch-first
                return head.forward(out[:, -1])
    start_ids: int array (B, T0) or (T0,), values >= 0, T0 >= 1.
    max_new_tokens: int >= 0. temperature, top_k, rng: as `sample_next` (one Generator for the
        whole run: a seed gives the same text every time).
    Returns an int64 array (B, T0 + max_new_tokens), or (T0 + max_new_tokens,) for 1-D start_ids:
    the start ids followed by the generated ones.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn: expected a callable ids -> logits, got {type(step_fn).__name__}")
    if not isinstance(start_ids, np.ndarray):
        raise TypeError(f"start_ids: expected a numpy.ndarray of token ids, got "
                        f"{type(start_ids).__name__}")
    if not np.issubdtype(start_ids.dtype, np.integer):
        raise TypeError(f"start_ids: expected integer token ids, got dtype {start_ids.dtype}")
    if start_ids.ndim not in (1, 2):
        raise ValueError(f"start_ids: expected a 1- or 2-dimensional array (T0,) or (B, T0), got "
                         f"shape {start_ids.shape}")
    if start_ids.size == 0:
        raise ValueError(f"start_ids: expected at least one token per sequence, got shape "
                         f"{start_ids.shape}")
    if (start_ids < 0).any():
        raise ValueError(f"start_ids: expected token ids >= 0, got {start_ids.min()}")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=0)
    temperature = check_float("temperature", temperature, low=0.0, low_open=True)
    if top_k is not None:
        check_int("top_k", top_k, low=1)
    gen = check_rng("rng", rng)

    one = start_ids.ndim == 1
    b, t0 = (1, start_ids.shape[0]) if one else start_ids.shape
    ids = np.empty((b, t0 + max_new_tokens), dtype=np.int64)
    ids[:, :t0] = start_ids.reshape(b, t0)
    vocab = None
    with no_grad():
        for t in range(t0, t0 + max_new_tokens):
            logits = step_fn(ids[:, :t].copy())        # a copy: step_fn may keep or modify it
            if not isinstance(logits, np.ndarray):
                raise TypeError(f"step_fn(ids): expected a numpy.ndarray of logits, got "
                                f"{type(logits).__name__}")
            if (logits.ndim != 2 or logits.shape[0] != b
                    or (vocab is not None and logits.shape[1] != vocab)):
                want = f"({b}, V)" if vocab is None else f"({b}, {vocab}) (V as before)"
                raise ValueError(f"step_fn(ids): expected logits of shape {want} for {b} "
                                 f"sequences, got {logits.shape}")
            logits = _check_logits("step_fn(ids)", logits)
            vocab = logits.shape[1]
            k = _check_top_k(top_k, vocab)
            ids[:, t] = _sample(logits, temperature, k, gen)
    return ids[0] if one else ids


__all__ = ["sample_next", "generate", "probabilities"]
