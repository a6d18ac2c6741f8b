"""Text for language models (notes 000 §8, 004 §4-5): the bundled tiny-Shakespeare corpus,
vocabularies, a fixed train/validation split, (N, T) windows with next-token targets, and B
parallel contiguous streams for truncated backpropagation through time.

    text = load_text()                              # 1,115,394 characters, sha256 checked
    train, valid = text_split(text)                 # first 90 % / last 10 %
    vocab = Vocabulary(train, min_count=1, unk=None, order="sorted")   # characters
    ids = vocab.encode(train)                       # int64 (n,)
    X, Y = lm_windows(ids, T=64)                    # (N, 64) each, Y[i, t] = ids of X[i, t + 1]
    C, y = ngram_windows(ids, context_size=4)       # (N, 4) previous tokens, (N,) the next one
    for x, y in bptt_batches(ids, batch_size=32, T=64):   # (T, B) each, rows continue
        ...

`char_corpus()` and `word_corpus(min_count)` do the above for the bundled text in one call.

Words: `word_tokens(text)` splits into lower-case words (letters and apostrophes) and, with
`punctuation=True`, punctuation marks as tokens of their own; `Vocabulary(word_tokens(train),
min_count=5)` maps rarer words to the unknown token "<unk>".

Nothing here uses the network. The corpus, its source and licence: TINYSHAKESPEARE_SOURCE.md.
"""
import functools
import gzip
import hashlib
import os
import re
from collections import Counter

import numpy as np

from engine.checks import check_bool, check_choice, check_float, check_int

TEXT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tinyshakespeare.txt.gz")
TEXT_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TEXT_LENGTH = 1_115_394


@functools.lru_cache(maxsize=1)
def _read_text():
    if not os.path.exists(TEXT_PATH):
        raise FileNotFoundError(f"bundled corpus {TEXT_PATH} is missing; the package was installed "
                                "without its data files")
    try:
        with gzip.open(TEXT_PATH, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{TEXT_PATH}: truncated or corrupt gzip file ({e})") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TEXT_SHA256:
        raise ValueError(f"{TEXT_PATH}: expected sha256 {TEXT_SHA256} of the uncompressed text, got {digest}")
    return raw.decode("ascii")


def load_text():
    """The bundled tiny-Shakespeare corpus as one str (1,115,394 ASCII characters). The sha256 of
    the uncompressed bytes is checked against TINYSHAKESPEARE_SOURCE.md's on the first load
    (ValueError naming the file when it differs); later calls return the cached string."""
    return _read_text()


def _check_sequence(name, data):
    """A str, a list/tuple of tokens or a 1-D integer ndarray, non-empty."""
    if isinstance(data, np.ndarray):
        if data.ndim != 1:
            raise ValueError(f"{name}: expected a 1-dimensional array, got shape {data.shape}")
    elif not isinstance(data, (str, list, tuple)):
        raise TypeError(f"{name}: expected a str, a list of tokens or a 1-D array, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name}: expected a non-empty sequence, got length 0")
    return data


def text_split(data, valid_fraction=0.1):
    """The fixed split: (first 1 − valid_fraction, last valid_fraction) of `data` (a str, a list
    of tokens or a 1-D array), cut at index n − round(n·valid_fraction). No shuffling: the
    validation text follows the training text, as for language models it must."""
    data = _check_sequence("data", data)
    valid_fraction = check_float("valid_fraction", valid_fraction, low=0.0, high=1.0, low_open=True)
    n = len(data)
    n_valid = int(round(n * valid_fraction))
    if not 1 <= n_valid < n:
        raise ValueError(f"valid_fraction: {valid_fraction} of {n} tokens leaves {n_valid} for validation "
                         f"and {n - n_valid} for training; expected at least one in each")
    return data[:n - n_valid], data[n - n_valid:]


_WORD = re.compile(r"[a-z']+")
_WORD_PUNCT = re.compile(r"[a-z']+|[^\sa-z']")


def word_tokens(text, lower=True, punctuation=False):
    """Words of `text`: runs of letters and apostrophes ("i'll", "o'er"), lower-cased by default;
    with punctuation=True every other non-space character is a token of its own."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    lower = check_bool("lower", lower)
    punctuation = check_bool("punctuation", punctuation)
    pattern = _WORD_PUNCT if punctuation else _WORD
    if lower:
        return pattern.findall(text.lower())
    return re.findall(pattern.pattern.replace("a-z", "A-Za-z"), text)


class Vocabulary:
    """A token ↔ id map built from a sequence of tokens (a str is a sequence of characters).

    Args:
        tokens: a str (characters) or a list/tuple of str tokens (words).
        min_count: tokens seen fewer times are left out (they encode as `unk`).
        unk: the unknown token (id 0), or None for no unknown token (then encoding a token
            outside the vocabulary is a ValueError).
        order: "frequency" (most frequent first, ties by the token's text: stable on every
            machine) or "sorted" (by the token's text, as char-rnn's character table).
        specials: extra tokens (e.g. "<pad>", "<bos>") given the ids right after `unk`.

    Attributes: `itos` (list, id → token), `stoi` (dict, token → id), `counts` (Counter of the
    tokens given), `unk_index` (0 or None), `len(vocab)`.
    """

    def __init__(self, tokens, min_count=1, unk="<unk>", order="frequency", specials=()):
        tokens = _check_sequence("tokens", tokens)
        if isinstance(tokens, np.ndarray):
            raise TypeError("tokens: expected a str or a list of str tokens, got a numpy.ndarray")
        self.min_count = check_int("min_count", min_count, low=1)
        self.order = check_choice("order", order, ("frequency", "sorted"))
        if unk is not None and not isinstance(unk, str):
            raise TypeError(f"unk: expected a str or None, got {type(unk).__name__}")
        if not isinstance(specials, (list, tuple)) or not all(isinstance(s, str) for s in specials):
            raise TypeError(f"specials: expected a list of str, got {specials!r}")
        head = ([unk] if unk is not None else []) + [s for s in specials if s != unk]
        if len(set(head)) != len(head):
            raise ValueError(f"specials: expected distinct tokens, got {list(specials)!r}")
        if not isinstance(tokens, str) and not all(isinstance(t, str) for t in tokens):
            bad = next(t for t in tokens if not isinstance(t, str))
            raise TypeError(f"tokens: expected str tokens, got {type(bad).__name__} {bad!r}")
        self.unk = unk
        self.counts = Counter(tokens)
        kept = [t for t, c in self.counts.items() if c >= self.min_count and t not in head]
        if self.order == "frequency":
            kept.sort(key=lambda t: (-self.counts[t], t))
        else:
            kept.sort()
        self.itos = head + kept
        if not self.itos:
            raise ValueError(f"min_count: no token occurs {self.min_count} times and there is no unk token: "
                             "the vocabulary would be empty")
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_index = 0 if unk is not None else None

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def encode(self, tokens):
        """int64 ids (n,) of a str (characters) or a list of tokens; tokens outside the
        vocabulary map to `unk_index` (ValueError naming the first one when there is no unk)."""
        tokens = _check_sequence("tokens", tokens)
        if isinstance(tokens, np.ndarray):
            raise TypeError("tokens: expected a str or a list of str tokens, got a numpy.ndarray")
        get = self.stoi.get
        if self.unk_index is None:
            missing = next((t for t in set(tokens) if t not in self.stoi), None)
            if missing is not None:
                raise ValueError(f"tokens: {missing!r} is not in the vocabulary (and it has no unk token)")
            return np.fromiter((self.stoi[t] for t in tokens), np.int64, len(tokens))
        return np.fromiter((get(t, 0) for t in tokens), np.int64, len(tokens))

    def decode(self, ids, sep=None):
        """The tokens of integer ids (any shape is flattened): a list, or `sep.join` of it when
        `sep` is a str ("" for characters, " " for words)."""
        ids = np.asarray(ids) if isinstance(ids, (list, tuple)) else ids
        if not isinstance(ids, np.ndarray):
            raise TypeError(f"ids: expected an integer array or list, got {type(ids).__name__}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids: expected integer ids, got dtype {ids.dtype}")
        flat = ids.reshape(-1).astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise ValueError(f"ids: expected ids in [0, {len(self) - 1}], got values in [{flat.min()}, {flat.max()}]")
        if sep is not None and not isinstance(sep, str):
            raise TypeError(f"sep: expected a str or None, got {type(sep).__name__}")
        out = [self.itos[i] for i in flat.tolist()]
        return out if sep is None else sep.join(out)

    def __repr__(self):
        return f"Vocabulary(size={len(self)}, min_count={self.min_count}, unk={self.unk!r}, order={self.order!r})"


def char_corpus(valid_fraction=0.1):
    """The bundled corpus as characters: (vocab, train_ids, valid_ids), the vocabulary of every
    character of the text in sorted order without an unknown token (65 characters, as char-rnn's
    table), the ids int64, split by `text_split`."""
    text = load_text()
    train, valid = text_split(text, valid_fraction)
    vocab = Vocabulary(text, unk=None, order="sorted")
    return vocab, vocab.encode(train), vocab.encode(valid)


def word_corpus(min_count=5, valid_fraction=0.1, punctuation=False):
    """The bundled corpus as words (`word_tokens`, lower-case): (vocab, train_ids, valid_ids),
    the vocabulary built from the training words only (those seen at least min_count times, by
    frequency; the rest, and validation words never seen in training, encode as "<unk>", id 0)."""
    train, valid = text_split(load_text(), valid_fraction)
    train_words = word_tokens(train, punctuation=punctuation)
    vocab = Vocabulary(train_words, min_count=min_count)
    return vocab, vocab.encode(train_words), vocab.encode(word_tokens(valid, punctuation=punctuation))


def _check_ids(name, ids):
    """A 1-D integer ndarray of non-negative ids -> contiguous int64."""
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of integer ids, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {ids.dtype}")
    if ids.ndim != 1:
        raise ValueError(f"{name}: expected a 1-dimensional array, got shape {ids.shape}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name}: expected non-negative ids, got a minimum of {ids.min()}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def lm_windows(ids, T, stride=None):
    """Language-modelling windows of a token stream: inputs X (N, T) and next-token targets
    Y (N, T), int64, with X[i] = ids[i·s : i·s + T] and Y[i] = ids[i·s + 1 : i·s + T + 1]
    (s = stride, T by default: windows that do not overlap). N = ⌊(n − 1 − T)/s⌋ + 1: the tokens
    past the last full window are dropped. Copies, so they can be shuffled freely."""
    ids = _check_ids("ids", ids)
    T = check_int("T", T, low=1)
    stride = T if stride is None else check_int("stride", stride, low=1)
    n = ids.shape[0]
    if n < T + 1:
        raise ValueError(f"T: a window of {T} inputs and its targets needs {T + 1} tokens, ids has {n}")
    N = (n - 1 - T) // stride + 1
    start = np.arange(N)[:, None] * stride + np.arange(T)[None, :]
    return ids[start], ids[start + 1]


def ngram_windows(ids, context_size):
    """Fixed-context examples for an n-gram-style model (the FF-NNLM, notes 000 §8.1.1): X (N,
    context_size) the previous context_size tokens, oldest first, and y (N,) the token after them,
    int64: X[i] = ids[i : i + context_size], y[i] = ids[i + context_size], N = n − context_size.
    Copies, so they can be shuffled freely."""
    ids = _check_ids("ids", ids)
    context_size = check_int("context_size", context_size, low=1)
    n = ids.shape[0]
    if n < context_size + 1:
        raise ValueError(f"context_size: a context of {context_size} tokens and its target needs "
                         f"{context_size + 1} tokens, ids has {n}")
    w = np.lib.stride_tricks.sliding_window_view(ids, context_size + 1)
    return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, -1])


class BPTTBatches:
    """B parallel contiguous streams of a token stream, cut into chunks of T steps (truncated
    backpropagation through time, as the AWD-LSTM `batchify`):

    the first B·L + 1 tokens (L = ⌊(n − 1)/B⌋) are laid out as B rows, row b holding
    ids[b·L : b·L + L + 1]; batch k is x = rows[:, kT : kT + T], y = rows[:, kT + 1 : kT + T + 1].
    So row b of batch k + 1 continues row b of batch k: the recurrent state left by one batch is
    the right initial state of the next. Shape (T, B) (time first, torch's RNN default) or
    (B, T) with batch_first. The last batch is shorter when T does not divide L, unless
    drop_last. Iterating again starts over (one pass = one epoch); len() is the batch count.
    """

    def __init__(self, ids, batch_size, T, batch_first=False, drop_last=False):
        ids = _check_ids("ids", ids)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.T = check_int("T", T, low=1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.drop_last = check_bool("drop_last", drop_last)
        n = ids.shape[0]
        L = (n - 1) // self.batch_size
        need = self.batch_size * (self.T if self.drop_last else 1) + 1
        if L < (self.T if self.drop_last else 1):
            raise ValueError(f"ids: {self.batch_size} streams of at least {self.T if self.drop_last else 1} "
                             f"steps need {need} tokens, got {n}")
        self.steps = L                     # tokens of input per stream
        starts = np.arange(self.batch_size)[:, None] * L + np.arange(L + 1)[None, :]
        self.streams = ids[starts]         # (B, L + 1)

    def __len__(self):
        full, rest = divmod(self.steps, self.T)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        for k in range(len(self)):
            t = k * self.T
            x = self.streams[:, t:min(t + self.T, self.steps)]
            y = self.streams[:, t + 1:min(t + self.T, self.steps) + 1]
            if self.batch_first:
                yield x.copy(), y.copy()
            else:
                yield np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)


def bptt_batches(ids, batch_size, T, batch_first=False, drop_last=False):
    """B = batch_size parallel contiguous streams of `ids`, in batches of T steps: a BPTTBatches
    (iterable, once per epoch; len() batches) of (x, y) int64 pairs of shape (T, B), or (B, T)
    with batch_first, y the next tokens of x. Arguments are checked here, not at the first batch."""
    return BPTTBatches(ids, batch_size, T, batch_first=batch_first, drop_last=drop_last)
