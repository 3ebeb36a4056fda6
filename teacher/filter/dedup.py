"""Exact and near-duplicate detection over whole traces (problem + completion).

Why the whole trace: completions alone collide across problems ("24 + 49 = 73." and "79 + 42 = 121." are
near-identical in shape); with the problem in the text, every differing number changes several shingles.
Why near-duplicates must also share the reference answer: two long traces of a templated problem that
differ in one number can still look 90% alike, but they teach different facts; with equal answers they
teach the same thing twice.
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")  # words, numbers and each symbol: "+" vs "-" must differ


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_key(text: str) -> bytes:
    """16 bytes that equal for texts equal up to case and whitespace: all exact dedup keeps per row."""
    return hashlib.blake2b(_normalise(text).encode(), digest_size=16).digest()


def exact_duplicates(texts: list[str]) -> list[int | None]:
    """For each text, the index of an earlier identical one (case and whitespace aside), else None."""
    first: dict[bytes, int] = {}
    found: list[int | None] = []
    for index, text in enumerate(texts):
        key = exact_key(text)
        found.append(first.get(key))
        first.setdefault(key, index)
    return found


def shingles(text: str, ngram: int) -> set[bytes]:
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) <= ngram:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + ngram]).encode() for i in range(len(tokens) - ngram + 1)}


def near_duplicates(
    texts: list[str], groups: list[str], threshold: float = 0.85, ngram: int = 5, num_perm: int = 128
) -> list[int | None]:
    """For each text, the index of an earlier *kept* text in the same group that it near-duplicates."""
    index = NearDuplicates(threshold, ngram, num_perm)
    return [index.check(i, text, group) for i, (text, group) in enumerate(zip(texts, groups, strict=True))]


@functools.cache
def _template(num_perm: int):
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=1)  # permutations are costly to draw: share one set


def signature(text: str, ngram: int = 5, num_perm: int = 128) -> np.ndarray:
    """The MinHash signature (num_perm 64-bit values) of the text's shingles: a pure function of the text,
    so it may be computed anywhere (in worker processes) and checked later."""
    from datasketch import MinHash

    template = _template(num_perm)
    sketch = MinHash(num_perm=num_perm, permutations=template.permutations, scheme=template.scheme)
    sketch.update_batch(list(shingles(text, ngram)))
    return sketch.hashvalues


class NearDuplicates:
    """Texts seen one at a time (a stream): each is checked against the earlier *kept* ones.

    Candidates come from MinHash LSH (datasketch); each is confirmed by its estimated Jaccard similarity
    (datasketch's MinHash.jaccard: the share of equal signature values) so that LSH's false positives never
    remove a row. Per kept text it holds the signature, its LSH band keys and a group key, never the text.
    """

    def __init__(self, threshold: float = 0.85, ngram: int = 5, num_perm: int = 128) -> None:
        from datasketch import MinHashLSH

        self.threshold, self.ngram, self.num_perm = threshold, ngram, num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.kept: dict[int, tuple[np.ndarray, bytes]] = {}

    def check(self, index: int, text: str, group: str) -> int | None:
        """The smallest index of a kept near-duplicate of ``text`` in its group; else None (it is kept)."""
        return self.check_signature(index, signature(text, self.ngram, self.num_perm), group)

    def check_signature(self, index: int, values: np.ndarray, group: str) -> int | None:
        from datasketch import LeanMinHash

        sketch = LeanMinHash(seed=1, hashvalues=values, scheme=_template(self.num_perm).scheme)
        group_key = hashlib.blake2b(group.encode(), digest_size=16).digest()
        match = None
        for key in self.lsh.query(sketch):
            other = int(key)
            other_values, other_group = self.kept[other]
            similar = np.count_nonzero(values == other_values) / len(values) >= self.threshold
            if other_group == group_key and similar:
                match = other if match is None else min(match, other)
        if match is None:
            self.lsh.insert(str(index), sketch)
            self.kept[index] = (values, group_key)
        return match
