"""Decontamination: find training problems that copy a benchmark problem.

Two passes over normalised text (lower-case words and numbers; LaTeX commands reduce to their names, so
``\\frac{1}{2}`` and ``frac 1 2`` read alike):

1. word n-grams (default 8, the usual choice for this check): a problem sharing any n-gram with a
   benchmark problem is a copy. Benchmark problems shorter than n words match only as a whole.
2. optional fuzzy pass (rapidfuzz ``ratio`` over the whole normalised text) for light rewording that
   breaks every n-gram; it only looks at problems the first pass let through.

Each match names the benchmark set and the item, so the filter report can say what was removed and why.

A benchmark is a registry name (``math500``: read as eval reads it, see ``distill.benchmarks``), a local file,
or a ``datasets`` Hub id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill import benchmarks as registry
from distill.errors import DistillError
from distill.recipe import BenchmarkSource, DecontaminationConfig
from distill.records import read_rows

_WORD = re.compile(r"[a-z0-9]+")
_PROBLEM_COLUMNS = ("problem", "question", "prompt")
_FUZZY_BATCH = 2048  # rows per rapidfuzz cdist call: bounds its (rows x benchmark problems) score matrix


@dataclass(frozen=True)
class BenchmarkSet:
    name: str
    problems: list[str]
    ids: list[str]


@dataclass(frozen=True)
class Match:
    benchmark: str
    item: str
    method: str  # "8-gram" | "exact" | "fuzzy 93"

    def __str__(self) -> str:
        return f"{self.benchmark}#{self.item} ({self.method})"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def load_benchmark(spec: BenchmarkSource, data_dir: str | Path | None = None) -> BenchmarkSet:
    """Read one benchmark set: a registry name (its local copy under ``data_dir`` or the default data dir,
    else its Hub id), a local file, or a `datasets` Hub id."""
    path = Path(spec.source)
    if not path.is_file() and registry.is_name(spec.source):
        return _load_named(spec, data_dir)
    if path.is_file():
        rows, where = read_rows(path), str(path)
        default_name = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    else:
        rows, where, default_name = _load_hub(spec), f"{spec.source} ({spec.split})", spec.source
    if not rows:
        raise DistillError(f"{where}: benchmark set is empty; check filter.decontaminate.benchmarks")
    column = spec.column or next((c for c in _PROBLEM_COLUMNS if c in rows[0]), None)
    if column is None or column not in rows[0]:
        raise DistillError(
            f"{where}: no problem column (found: {', '.join(sorted(rows[0]))}); "
            "set filter.decontaminate.benchmarks[].column"
        )
    problems = [str(row.get(column) or "") for row in rows]
    ids = [str(row.get("unique_id") or row.get("id") or index) for index, row in enumerate(rows)]
    return BenchmarkSet(spec.name or default_name, problems, ids)


def _load_named(spec: BenchmarkSource, data_dir: str | Path | None) -> BenchmarkSet:
    """A registry name: the rows eval scores (same file, problem field and ids), labelled by the name."""
    check_named(spec.source, data_dir)
    rows = registry.load_rows(spec.source, data_dir)
    if not rows:
        raise DistillError(f"{registry.resolve(spec.source, data_dir)}: benchmark set {spec.source} is empty")
    return BenchmarkSet(spec.name or spec.source, [r["problem"] for r in rows], [r["id"] for r in rows])


def check_names(specs: list[BenchmarkSource]) -> None:
    """Every registry name among ``specs`` is known (checked before any set is read: a typo fails first)."""
    for spec in specs:
        if registry.is_name(spec.source) and not Path(spec.source).is_file():
            registry.get(spec.source, "filter.decontaminate.benchmarks")


def check_named(name: str, data_dir: str | Path | None) -> None:
    """A registry name is known, and has a local copy or a reachable Hub (one line otherwise)."""
    registry.get(name, "filter.decontaminate.benchmarks")
    registry.check_available(name, data_dir, "filter.decontaminate.benchmarks")


def benchmark_files(cfg: DecontaminationConfig, data_dir: str | Path | None = None) -> list[str]:
    """Each benchmark's source as the fingerprint digests it: a path or Hub id as written, a registry name
    as the local file it resolves to (so editing that copy reruns the filter), else its Hub id."""
    return [
        str(registry.resolve(b.source, data_dir))
        if b.source in registry.BENCHMARKS and not Path(b.source).is_file()
        else b.source
        for b in cfg.benchmarks
    ]


def _load_hub(spec: BenchmarkSource) -> list[dict[str, Any]]:
    if spec.source.startswith((".", "/")) or spec.source.endswith((".jsonl", ".json", ".parquet", ".csv")):
        raise DistillError(f"{spec.source}: benchmark file not found; fix filter.decontaminate.benchmarks")
    import datasets

    try:
        return list(datasets.load_dataset(spec.source, spec.config, split=spec.split))
    except Exception as exc:  # offline, unknown id, wrong split: all fixable by pointing at a local file
        raise DistillError(
            f"filter.decontaminate.benchmarks: cannot load {spec.source!r} split {spec.split!r} "
            f"({type(exc).__name__}); use a local file path instead"
        ) from None


class Decontaminator:
    """An index of benchmark problems; ``match_many`` checks training problems against it."""

    def __init__(
        self,
        benchmarks: Iterable[BenchmarkSet],
        ngram: int = 8,
        fuzzy: bool = False,
        fuzzy_threshold: float = 90.0,
    ) -> None:
        self.ngram, self.fuzzy, self.fuzzy_threshold = ngram, fuzzy, fuzzy_threshold
        self.sizes: dict[str, int] = {}
        self._items: list[tuple[str, str]] = []  # (benchmark, item id), indexed like _texts
        self._texts: list[str] = []
        self._grams: dict[tuple[str, ...], int] = {}
        self._whole: dict[str, int] = {}
        for bench in benchmarks:
            self.sizes[bench.name] = len(bench.problems)
            for problem, item in zip(bench.problems, bench.ids, strict=True):
                self._add(words(problem), (bench.name, item))

    def _add(self, tokens: list[str], item: tuple[str, str]) -> None:
        if not tokens:  # an empty benchmark row would otherwise match every empty problem
            return
        index = len(self._items)
        self._items.append(item)
        self._texts.append(" ".join(tokens))
        if len(tokens) < self.ngram:
            self._whole.setdefault(" ".join(tokens), index)
            return
        for gram in zip(*(tokens[i:] for i in range(self.ngram)), strict=False):
            self._grams.setdefault(gram, index)

    def match_ngram(self, text: str) -> Match | None:
        tokens = words(text)
        whole = self._whole.get(" ".join(tokens))
        if whole is not None:
            return Match(*self._items[whole], "exact")
        grams = self._grams
        for gram in zip(*(tokens[i:] for i in range(self.ngram)), strict=False):
            hit = grams.get(gram)
            if hit is not None:
                return Match(*self._items[hit], f"{self.ngram}-gram")
        return None

    def match_many(self, texts: list[str]) -> list[Match | None]:
        """One match (or None) per text; each distinct text is checked once."""
        unique = list(dict.fromkeys(texts))
        found = {text: self.match_ngram(text) for text in unique}
        if self.fuzzy and self._texts:
            left = [text for text in unique if found[text] is None]
            found.update(self._fuzzy(left))
        return [found[text] for text in texts]

    def _fuzzy(self, texts: list[str]) -> dict[str, Match]:
        import numpy as np
        from rapidfuzz import fuzz, process

        matches: dict[str, Match] = {}
        for start in range(0, len(texts), _FUZZY_BATCH):
            batch = texts[start : start + _FUZZY_BATCH]
            queries = [" ".join(words(text)) for text in batch]
            scores = process.cdist(
                queries,
                self._texts,
                scorer=fuzz.ratio,
                score_cutoff=self.fuzzy_threshold,
                dtype=np.uint8,
                workers=-1,
            )
            best = scores.argmax(axis=1)
            for row, text in enumerate(batch):
                score = int(scores[row, best[row]])
                if score and queries[row]:
                    matches[text] = Match(*self._items[best[row]], f"fuzzy {score}")
        return matches


def build_decontaminator(
    specs: list[BenchmarkSource],
    ngram: int = 8,
    fuzzy: bool = False,
    fuzzy_threshold: float = 90.0,
    data_dir: str | Path | None = None,
) -> Decontaminator:
    """Load every benchmark set of the recipe (names under ``data_dir``, i.e. eval.data_dir) and index it."""
    sets = [load_benchmark(spec, data_dir) for spec in specs]
    return Decontaminator(sets, ngram, fuzzy, fuzzy_threshold)
