"""Regenerate the quickstart's two-digit addition sets (deterministic; train and held-out are disjoint).

python recipes/data/make_addition.py
"""

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(seed: int = 2026, train: int = 400, heldout: int = 100) -> None:
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    random.Random(seed).shuffle(pairs)
    sets = {
        "recipes/data/addition_train.jsonl": pairs[:train],
        "eval/tasks/data/addition_heldout.jsonl": pairs[train : train + heldout],
    }
    for relative, chosen in sets.items():
        prefix = "train" if "train" in relative else "heldout"
        lines = [
            json.dumps({"id": f"{prefix}-{i:04d}", "problem": f"What is {a} + {b}?", "answer": str(a + b)})
            for i, (a, b) in enumerate(chosen)
        ]
        (ROOT / relative).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
