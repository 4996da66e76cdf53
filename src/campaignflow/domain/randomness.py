"""Deterministic "randomness": a uniform number in [0, 1) derived from a seed.

A/B splits and retry jitter must not draw from a random generator. The same contact in the same
split must land in the same variant on every evaluation: in a dry run and in the real run, after a
worker restart, and on any worker process. So the number is a pure function of its parts: the
SHA-256 of the parts, cut to 53 bits (a double's mantissa, so every result is exactly
representable and uniform on a grid of 2**-53). Python's :func:`hash` would not do: it is salted
per process (``PYTHONHASHSEED``), and :mod:`random` keeps hidden state.

The encoding is part of the contract: changing it would reshuffle every running split.
"""

from __future__ import annotations

import hashlib

_BITS = 53
_LENGTH_BYTES = 8


def unit_interval(*parts: str | int) -> float:
    """A number in [0, 1), uniform over seeds, that depends only on ``parts``.

    Each part is written as its UTF-8 text (an ``int`` as its decimal digits, so ``7`` and
    ``"7"`` are the same part) preceded by its length, so no two different part lists collide by
    concatenation: ``("ab", "c")``, ``("a", "bc")`` and ``("abc",)`` give unrelated numbers.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = str(part).encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(_LENGTH_BYTES, "big"))
        digest.update(data)
    top = int.from_bytes(digest.digest()[:_LENGTH_BYTES], "big") >> (_LENGTH_BYTES * 8 - _BITS)
    return top / (1 << _BITS)
