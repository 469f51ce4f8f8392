"""Explicit randomness: every (run seed, phase, round, ...) tuple gets its own generator.

Example:
    >>> a = generator(7, "pool")
    >>> b = generator(7, "pool")
    >>> bool(a.integers(1 << 30) == b.integers(1 << 30))
    True
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode())
    if part < 0:
        raise ValueError(f"seed parts must be non-negative, got {part}")
    return int(part)


def generator(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator determined by `seed` and the keys, independent of every other key tuple."""
    return np.random.default_rng([_key(seed), *(_key(k) for k in keys)])


def child_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit integer seed derived like `generator`, for libraries that take an int."""
    return int(generator(seed, *keys).integers(1 << 63))
