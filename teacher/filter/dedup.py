"""Exact and near-duplicate detection over whole traces (problem + completion).

Why the whole trace: completions alone collide across problems ("24 + 49 = 73." and "79 + 42 = 121." are
near-identical in shape); with the problem in the text, every differing number changes several shingles.
Why near-duplicates must also share the reference answer: two long traces of a templated problem that
differ in one number can still look 90% alike, but they teach different facts; with equal answers they
teach the same thing twice.
"""

from __future__ import annotations

import hashlib
import re

_TOKEN = re.compile(r"\w+|[^\w\s]")  # words, numbers and each symbol: "+" vs "-" must differ


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_duplicates(texts: list[str]) -> list[int | None]:
    """For each text, the index of an earlier identical one (case and whitespace aside), else None."""
    first: dict[bytes, int] = {}
    found: list[int | None] = []
    for index, text in enumerate(texts):
        key = hashlib.blake2b(_normalise(text).encode(), digest_size=16).digest()
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
    """For each text, the index of an earlier *kept* text in the same group that it near-duplicates.

    Candidates come from MinHash LSH (datasketch); each is confirmed by its estimated Jaccard similarity
    so that LSH's false positives never remove a row.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=1)  # permutations are costly to draw: share one set
    kept: dict[int, MinHash] = {}
    found: list[int | None] = []
    for index, text in enumerate(texts):
        sketch = MinHash(num_perm=num_perm, permutations=template.permutations, scheme=template.scheme)
        sketch.update_batch(list(shingles(text, ngram)))
        match = None
        for key in lsh.query(sketch):
            other = int(key)
            if groups[other] == groups[index] and kept[other].jaccard(sketch) >= threshold:
                match = other if match is None else min(match, other)
        found.append(match)
        if match is None:
            lsh.insert(str(index), sketch)
            kept[index] = sketch
    return found
