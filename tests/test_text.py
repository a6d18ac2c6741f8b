"""engine.data.text: the bundled corpus, vocabularies, the split, LM windows and BPTT streams."""
import hashlib

import numpy as np
import pytest

from engine.data import (Vocabulary, bptt_batches, char_corpus, lm_windows, load_text,
                         text_split, word_corpus, word_tokens)
from engine.data.text import TEXT_LENGTH, TEXT_SHA256


def test_corpus_is_bundled_complete_and_checked():
    text = load_text()
    assert len(text) == TEXT_LENGTH and text.startswith("First Citizen:\n")
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == TEXT_SHA256
    assert load_text() is text                       # cached


def test_split_is_fixed_and_contiguous():
    text = load_text()
    train, valid = text_split(text)
    assert train + valid == text and len(valid) == round(0.1 * len(text))
    a, b = text_split(np.arange(10), valid_fraction=0.3)
    assert a.tolist() == list(range(7)) and b.tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="valid_fraction"):
        text_split("abc", valid_fraction=0.01)
    with pytest.raises(ValueError, match="valid_fraction"):
        text_split("abc", valid_fraction=0.0)
    with pytest.raises(TypeError, match="data"):
        text_split(3)
    with pytest.raises(ValueError, match="data"):
        text_split("")


def test_character_vocabulary_round_trip_and_order():
    v = Vocabulary("hello world", unk=None, order="sorted")
    assert v.itos == sorted(set("hello world")) and len(v) == 8 and v.unk_index is None
    ids = v.encode("hold")
    assert ids.dtype == np.int64 and v.decode(ids, sep="") == "hold"
    assert v.decode(ids[None, :]) == list("hold")
    with pytest.raises(ValueError, match="tokens: 'z'"):
        v.encode("z")
    with pytest.raises(ValueError, match="ids"):
        v.decode(np.array([8]))
    with pytest.raises(TypeError, match="ids"):
        v.decode(np.array([1.0]))


def test_word_vocabulary_min_count_unk_and_stable_frequency_order():
    words = word_tokens("The cat, the dog; the cat. O'er a bird!")
    assert words == ["the", "cat", "the", "dog", "the", "cat", "o'er", "a", "bird"]
    assert word_tokens("Hi, you.", punctuation=True) == ["hi", ",", "you", "."]
    v = Vocabulary(words, min_count=2, specials=("<pad>",))
    assert v.itos == ["<unk>", "<pad>", "the", "cat"]       # ties would go by text
    assert v.encode(["the", "bird", "cat"]).tolist() == [2, 0, 3]
    assert v.stoi["cat"] == 3 and "dog" not in v and v.counts["the"] == 3
    ties = Vocabulary(["b", "a", "c", "a", "b"])
    assert ties.itos == ["<unk>", "a", "b", "c"]


def test_vocabulary_arguments_named():
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary("abc", min_count=0)
    with pytest.raises(TypeError, match="min_count"):
        Vocabulary("abc", min_count=1.5)
    with pytest.raises(ValueError, match="order"):
        Vocabulary("abc", order="random")
    with pytest.raises(TypeError, match="unk"):
        Vocabulary("abc", unk=0)
    with pytest.raises(TypeError, match="tokens"):
        Vocabulary(["a", 3])
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary("abc", min_count=2, unk=None)
    with pytest.raises(TypeError, match="tokens"):
        Vocabulary(np.arange(3))


def test_lm_windows_next_token_targets():
    ids = np.arange(11)
    X, Y = lm_windows(ids, 3)
    assert X.dtype == Y.dtype == np.int64 and X.shape == Y.shape == (3, 3)
    assert X.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and np.array_equal(Y, X + 1)
    X2, Y2 = lm_windows(ids, 4, stride=2)
    assert X2.shape == (4, 4) and X2[-1].tolist() == [6, 7, 8, 9] and Y2[-1, -1] == 10
    assert lm_windows(ids, 10)[0].shape == (1, 10)
    with pytest.raises(ValueError, match="T"):
        lm_windows(ids, 11)
    with pytest.raises(TypeError, match="ids"):
        lm_windows(ids.astype(float), 2)
    with pytest.raises(ValueError, match="ids"):
        lm_windows(ids.reshape(1, -1), 2)
    with pytest.raises(ValueError, match="ids"):
        lm_windows(ids - 1, 2)
    with pytest.raises(ValueError, match="stride"):
        lm_windows(ids, 2, stride=0)


@pytest.mark.parametrize("batch_first", [False, True])
def test_bptt_streams_continue_from_batch_to_batch(batch_first):
    ids = np.arange(23)                              # B = 3: L = 7 steps per stream
    batches = bptt_batches(ids, 3, 3, batch_first=batch_first)
    got = list(batches)
    assert len(batches) == len(got) == 3              # 3 + 3 + 1 steps
    rows_x = np.concatenate([x if batch_first else x.T for x, _ in got], axis=1)
    rows_y = np.concatenate([y if batch_first else y.T for _, y in got], axis=1)
    assert rows_x.tolist() == [list(range(b * 7, b * 7 + 7)) for b in range(3)]
    assert np.array_equal(rows_y, rows_x + 1)
    assert got[0][0].shape == (3, 3) and got[-1][0].shape == ((3, 1) if batch_first else (1, 3))
    assert all(x.dtype == np.int64 and x.flags.c_contiguous for x, _ in got)
    assert len(list(batches)) == 3                   # a second epoch starts over
    dropped = bptt_batches(ids, 3, 3, batch_first=batch_first, drop_last=True)
    assert len(dropped) == len(list(dropped)) == 2


def test_bptt_arguments_named():
    ids = np.arange(10)
    with pytest.raises(ValueError, match="ids"):
        bptt_batches(ids, 10, 2)
    with pytest.raises(ValueError, match="batch_size"):
        bptt_batches(ids, 0, 2)
    with pytest.raises(ValueError, match="T"):
        bptt_batches(ids, 2, 0)
    with pytest.raises(TypeError, match="batch_first"):
        bptt_batches(ids, 2, 2, batch_first=1)
    with pytest.raises(TypeError, match="ids"):
        bptt_batches(list(ids), 2, 2)
    with pytest.raises(ValueError, match="ids"):
        bptt_batches(ids, 3, 4, drop_last=True)


def test_char_and_word_corpus_in_one_call():
    vocab, train, valid = char_corpus()
    text = load_text()
    assert len(vocab) == 65 and vocab.unk_index is None and vocab.itos == sorted(set(text))
    assert len(train) + len(valid) == len(text) and train.dtype == np.int64
    assert vocab.decode(valid[:20], sep="") == text_split(text)[1][:20]
    wv, wtrain, wvalid = word_corpus(min_count=5)
    assert wv.itos[0] == "<unk>" and wv.itos[1] == "the" and len(wv) > 2000
    assert (wvalid == 0).mean() < 0.2 and wtrain.min() >= 0 and wvalid.max() < len(wv)
    with pytest.raises(ValueError, match="min_count"):
        word_corpus(min_count=0)


def test_ngram_windows_previous_tokens_and_next():
    from engine.data.text import ngram_windows
    ids = np.arange(10, 20)
    X, y = ngram_windows(ids, 3)
    assert X.shape == (7, 3) and y.shape == (7,) and X.dtype == y.dtype == np.int64
    assert X[0].tolist() == [10, 11, 12] and y[0] == 13 and X[-1].tolist() == [16, 17, 18] and y[-1] == 19
    X[0, 0] = -1
    assert ids[0] == 10                              # a copy
    with pytest.raises(ValueError, match="context_size: a context of 10 tokens"):
        ngram_windows(ids, 10)
    with pytest.raises(ValueError, match="context_size"):
        ngram_windows(ids, 0)
    with pytest.raises(TypeError, match="ids"):
        ngram_windows(ids.astype(float), 2)
