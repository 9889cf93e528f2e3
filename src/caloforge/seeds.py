"""Random states as functions of integer keys: numpy's ``SeedSequence``, for many keys at once.

Every random stream of caloforge is a function of a key (run seed, stream tag, index): Geant4's
engine for event i of a run, the model noise of a hybrid run's event i, a generation batch's
noise. numpy's ``SeedSequence`` turns a key into well-mixed state words (M. E. O'Neill's
``seed_seq`` hashing, as numpy implements it in ``numpy.random.bit_generator``), but it costs
about 13 µs a key, and a hybrid Geant4 event takes about 200 µs in all. ``states`` computes the
same words for a whole array of keys with the same 32-bit arithmetic on NumPy arrays; a test holds
it equal to ``SeedSequence`` word for word.

Departure from SeedSequence: none in the result. Keys whose entries do not each fit in 32 bits
(which SeedSequence splits into several words) go through SeedSequence itself, one by one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["indexed", "states"]

_POOL = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SHIFT = np.uint32(16)
_MASK = 0xFFFFFFFF


def states(keys, n_words: int = 1, dtype=np.uint32) -> np.ndarray:
    """``SeedSequence(list(key)).generate_state(n_words, dtype)`` for each row of ``keys``.

    Arguments:
        keys: (N, k) non-negative integers, one key per row.
        n_words: words per key.
        dtype: ``np.uint32`` or ``np.uint64``.

    Returns (N, n_words) words of ``dtype``.

    Example:
        >>> keys = [[7, 0x6734, 0], [7, 0x6734, 1]]
        >>> bool((states(keys, 4)[1] == np.random.SeedSequence(keys[1]).generate_state(4)).all())
        True
    """
    keys = np.asarray(keys)
    wide = np.dtype(dtype) == np.uint64
    if keys.ndim != 2 or keys.shape[1] == 0 or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"keys must be a 2-D array of integers, got shape {keys.shape}")
    if keys.size and (keys.min() < 0 or keys.max() > _MASK):
        return np.stack(
            [
                np.random.SeedSequence([int(v) for v in key]).generate_state(n_words, dtype)
                for key in keys
            ]
        ).reshape(len(keys), n_words)
    pool = _pool(keys.astype(np.uint32))
    words = np.empty((len(keys), n_words * (2 if wide else 1)), np.uint32)
    h = _INIT_B
    for i in range(words.shape[1]):
        value = pool[i % _POOL] ^ np.uint32(h)
        h = (h * _MULT_B) & _MASK
        value = value * np.uint32(h)
        words[:, i] = value ^ (value >> _SHIFT)
    if wide:  # pairs of words, little-endian first, as SeedSequence
        return words.astype("<u4").view("<u8").astype(np.uint64)
    return words


def indexed(seed: int, tag: int, indices) -> np.ndarray:
    """Keys (N, 3) of a stream: (run seed, stream tag, index) for each of ``indices``."""
    return np.stack(np.broadcast_arrays(seed, tag, np.asarray(indices)), axis=1)


def _pool(entropy: np.ndarray) -> list[np.ndarray]:
    """SeedSequence's ``mix_entropy``: the 4-word pool of each key (columns of ``entropy``)."""
    h = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal h
        value = value ^ np.uint32(h)
        h = (h * _MULT_A) & _MASK
        value = value * np.uint32(h)
        return value ^ (value >> _SHIFT)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = _MIX_L * x - _MIX_R * y
        return result ^ (result >> _SHIFT)

    n, k = entropy.shape
    zero = np.zeros(n, np.uint32)
    pool = [hashmix(entropy[:, i] if i < k else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, k):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[:, src]))
    return pool
