"""SFT throughput: padded batches vs padding-free BFD packing on the same traces, side by side.

Both sides run the real student stage (`student.sft.train_student`: our tokenization, TRL SFTTrainer, the
token-counting collator) on one set of reasoning-like traces whose lengths follow a long-tailed spread
(log-normal, ~40 to ~1,000 tokens, as kept R1 traces are relative to their context), with the same model,
max_length, micro-batch and step count. Reported: real (non-pad) tokens trained per second and the share of
computed token slots that are real.

    HF_HUB_OFFLINE=1 python bench/bench_sft_packing.py                # ~5 minutes on 2 cores
    HF_HUB_OFFLINE=1 python bench/bench_sft_packing.py --steps 12 --rounds 2

The model is a randomly initialised Llama (default 4 layers, hidden 256; ``--hidden``/``--layers``) with the
tiny model's tokenizer: big enough that compute, not Python overhead, dominates a step on a CPU. How much
packing gains depends on the width: SDPA on a CPU computes each packed row's full (masked) attention
square, so a narrow model with long rows is attention-bound, while real students (hidden >= 1536) spend
most of a step in their linear layers, where padding is pure waste. Sides alternate for ``--rounds`` rounds and
the best round of each is compared (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(folder: Path, hidden: int, layers: int) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from distill.models import TINY_MODEL, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(TINY_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 64,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def traces(count: int, seed: int = 0) -> list[dict]:
    """Prompt/completion rows with <think> reasoning of log-normally spread length."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        words = min(int(rng.lognormvariate(4.6, 0.8)), 900)  # median ~100 words, long tail
        thinking = " ".join(
            rng.choice(("add", "carry", "so", "then", "check", str(a), str(b))) for _ in range(words)
        )
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                "completion": [
                    {"role": "assistant", "content": f"<think>{thinking}</think> \\boxed{{{a + b}}}"}
                ],
            }
        )
    return rows


def run_side(
    model: str, train: Path, work: Path, packing: bool, steps: int, max_length: int, batch: int
) -> dict:
    from distill.recipe import StudentConfig
    from student.sft import train_student

    cfg = StudentConfig(
        name="bench",
        model=model,
        max_steps=steps,
        batch_size=batch,
        max_length=max_length,
        packing=packing,
        learning_rate=1e-4,
        report_to=[],
        save_steps=10_000,
        logging_steps=1,
    )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    metrics = train_student(model, train, work, cfg)
    history = json.loads((work / "train_metrics.json").read_text())["log_history"]
    # Skip the first step (allocator warm-up), then real tokens over wall time of the rest.
    timed = [e for e in history if "tokens_per_second" in e][1:]
    return {
        "tokens_per_second": sum(e["tokens_per_second"] for e in timed) / max(len(timed), 1),
        "real_token_share": metrics["real_token_share"],
        "steps": metrics["steps"],
        "train_rows": metrics["train_rows"],
        "too_long": metrics["too_long"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=4, help="micro-batch (packed rows when packing)")
    parser.add_argument("--hidden", type=int, default=256, help="model width (intermediate = 3x)")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    from distill.records import write_parquet

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", args.hidden, args.layers)
        train = write_parquet(traces(args.rows), root / "train.parquet")
        best: dict[str, dict] = {}
        for round_index in range(args.rounds):
            for name, packing in (("padded", False), ("packed", True)):
                side = run_side(model, train, root / name, packing, args.steps, args.max_length, args.batch)
                print(f"round {round_index + 1} {name}: {json.dumps(side)}", flush=True)
                if name not in best or side["tokens_per_second"] > best[name]["tokens_per_second"]:
                    best[name] = side
    padded, packed = best["padded"], best["packed"]
    print("\n| side | real tokens/s | real-token share | steps | rows |")
    print("|---|---|---|---|---|")
    for name, side in best.items():
        print(
            f"| {name} | {side['tokens_per_second']:.0f} | {side['real_token_share']:.1%} | {side['steps']} "
            f"| {side['train_rows']} |"
        )
    print(
        f"\npacked / padded real tokens/s: {packed['tokens_per_second'] / padded['tokens_per_second']:.2f}x"
    )


if __name__ == "__main__":
    main()
