"""Helpers for the generate-stage tests: a tiny prompt file, recipe files, shard readers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from distill.recipe import Recipe


def write_prompts(path: Path, count: int) -> Path:
    rows = [
        {"id": f"p{i:03d}", "problem": f"What is {i} + {i % 7}?", "answer": str(i + i % 7)}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_traces(folder: Path) -> list[dict]:
    return [
        row for shard in sorted(folder.glob("shard-*.parquet")) for row in pq.read_table(shard).to_pylist()
    ]


def key_counts(folder: Path) -> Counter:
    return Counter((r["prompt_id"], r["sample_idx"]) for r in read_traces(folder))


def save_recipe(folder: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def as_recipe(recipe: dict) -> Recipe:
    return Recipe.model_validate(recipe)
