"""Fixtures for the generate-stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from teacher_helpers import write_prompts


@pytest.fixture
def gen_recipe_dict(tmp_path: Path, tiny_recipe_dict: dict) -> dict:
    """The tiny recipe with its own 6-prompt file, 2 samples each, shards of 4 rows."""
    recipe = tiny_recipe_dict
    recipe["data"].update(source=str(write_prompts(tmp_path / "prompts.jsonl", 6)), limit=None)
    recipe["teacher"].update(samples_per_prompt=2, shard_size=4, batch_size=4)
    return recipe
