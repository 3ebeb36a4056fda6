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

    Candidates come from MinHash LSH with datasketch's band layout for the threshold (MinHashLSH's b bands
    of r values): two signatures are candidates when some band is equal. Each candidate is confirmed by its
    estimated Jaccard similarity (datasketch's MinHash.jaccard: the share of equal values) so that LSH's
    false positives never remove a row. The index is kept compact for sets of millions of rows: the kept
    signatures in one growing array, and per band a dict from the band's hash to the kept rows having it
    (datasketch's index holds ~4 KB of Python objects per row; this ~2 KB). A band hash collision can only
    add a candidate, which the Jaccard check then judges.
    """

    def __init__(self, threshold: float = 0.85, ngram: int = 5, num_perm: int = 128) -> None:
        from datasketch import MinHashLSH

        self.threshold, self.ngram, self.num_perm = threshold, ngram, num_perm
        self.bands = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
        self.tables: list[dict[int, int | list[int]]] = [{} for _ in self.bands]
        self.signatures = np.empty((1024, num_perm), dtype=np.uint64)
        self.groups = np.empty(1024, dtype=np.uint64)  # 64-bit hashes of the group keys
        self.indexes: list[int] = []  # kept position -> the row's index

    def check(self, index: int, text: str, group: str) -> int | None:
        """The smallest index of a kept near-duplicate of ``text`` in its group; else None (it is kept)."""
        return self.check_signature(index, signature(text, self.ngram, self.num_perm), group)

    def check_signature(self, index: int, values: np.ndarray, group: str) -> int | None:
        group_key = int.from_bytes(hashlib.blake2b(group.encode(), digest_size=8).digest(), "little")
        keys = [hash(values[start:end].tobytes()) for start, end in self.bands]
        candidates: set[int] = set()
        for key, table in zip(keys, self.tables, strict=True):
            found = table.get(key)
            if found is not None:
                candidates.update(found if isinstance(found, list) else (found,))
        match = None
        for position in candidates:
            if self.groups[position] != group_key:
                continue
            if np.count_nonzero(values == self.signatures[position]) / len(values) >= self.threshold:
                other = self.indexes[position]
                match = other if match is None else min(match, other)
        if match is None:
            self._keep(index, values, group_key, keys)
        return match

    def _keep(self, index: int, values: np.ndarray, group_key: int, keys: list[int]) -> None:
        position = len(self.indexes)
        if position == len(self.signatures):  # grow by half: amortised O(1), no per-row objects
            grown = position + position // 2
            self.signatures = np.resize(self.signatures, (grown, self.num_perm))
            self.groups = np.resize(self.groups, grown)
        self.signatures[position] = values
        self.groups[position] = group_key
        self.indexes.append(index)
        for key, table in zip(keys, self.tables, strict=True):
            found = table.get(key)
            if found is None:
                table[key] = position
            elif isinstance(found, list):
                found.append(position)
            else:
                table[key] = [found, position]
