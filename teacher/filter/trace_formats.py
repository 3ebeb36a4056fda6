"""Read published reasoning-trace sets in the shapes they are published in: each shape (a preset,
``filter.format``) becomes our trace rows (one per sample), so the filter stage sees one contract.

- generations: one problem per row, its samples in a list column, optional per-sample verdict and
  finish-reason lists (OpenR1-Math-220k) -> one trace per item, ``sample_idx`` = its list position;
- messages: chat rows ``[{role, content}]`` (Mixture-of-Thoughts, TRL datasets);
- conversations: ShareGPT rows ``[{from, value}]`` with an optional ``system`` column (OpenThoughts,
  Bespoke-Stratos);
- reasoning_columns: problem, reasoning and final answer in separate columns (s1K) -> the completion is
  ``<think>\\n{reasoning}\\n</think>\\n\\n{final}``;
- custom: one trace per row with problem (or messages), answer and completion, renamed with filter.columns.

Chat rows: the problem is the last user turn and the completion the assistant turn after it. Every earlier
turn (a system prompt, earlier exchanges) stays in the prompt, so the SFT rows keep them exactly.
Which columns play which role is decided first (teacher.filter.trace_layout). A row that cannot be read as its
shape is a one-line error naming the file, the row and the column; a row that can be read but holds nothing to train
on (an empty generation) is counted by reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from distill.errors import DistillError
from distill.verify import last_boxed
from teacher.filter.steps import problem_text
from teacher.filter.trace_layout import Layout
from teacher.prompts import assemble_completion

Row = dict[str, Any]

# Code sets: role -> the columns published sets use for it (first present wins).
CODE_COLUMNS = {
    "tests": ("tests", "test_cases", "verification_info", "input_output", "test"),
    "entry_point": ("entry_point", "fn_name"),
    "starter_code": ("starter_code",),
    "language": ("language",),
}

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def read_as_traces(
    raw: list[Row], layout: Layout, where: str, start: int = 0, samples: Counter[str] | None = None
) -> tuple[list[Row], Counter[str]]:
    """Trace rows from source rows, and the count of source items not turned into a trace, by reason.

    Read in batches, ``start`` is the first row's position in the source and ``samples`` (samples seen per
    prompt id) is carried from batch to batch, so that batches give the rows one read of the whole gives."""
    samples = Counter() if samples is None else samples  # a problem repeated in another row: new indexes
    if layout.format == "custom":
        return read_custom(raw, layout, where, start, samples), Counter()
    unused: Counter[str] = Counter()
    traces: list[Row] = []
    reader = _READERS[layout.format]
    cols = layout.columns
    for index, row in enumerate(raw, start):
        at = f"{where}: row {index + 1}"
        answer, missing = _reference(row, layout, at)
        added = []
        for prompt, completion, extra in reader(row, cols, at, unused):
            problem = prompt[-1]["content"]
            prompt_id = _prompt_id(row.get(cols["id"]) if "id" in cols else None, prompt)
            added.append(
                {
                    "prompt_id": prompt_id,
                    "sample_idx": samples[prompt_id] + extra.pop("position", 0),
                    "problem": problem,
                    "answer": answer,
                    "answer_missing": missing,
                    "completion": completion,
                    "messages": [*prompt, {"role": "assistant", "content": completion}],
                    "source_row": index,
                    **code_fields(row, cols),
                    **extra,
                }
            )
        for trace in added:
            samples[trace["prompt_id"]] = max(samples[trace["prompt_id"]], trace["sample_idx"] + 1)
        traces += added
    return traces, unused


def code_fields(row: Row, cols: dict[str, str]) -> Row:
    """A code set's tests and their companions (open-r1 ``verification_info``, OpenThoughts/APPS/TACO
    ``test_cases`` / ``input_output``, HumanEval-style ``test`` + ``entry_point``), under our names; the
    checker (distill.verify.code) reads each of their shapes. Empty when the row has no tests."""
    tests = row.get(cols["tests"]) if "tests" in cols else None
    if tests in (None, "", [], {}):
        return {}
    info = tests
    if isinstance(tests, str) and tests.lstrip()[:1] == "{":
        try:
            info = json.loads(tests)
        except ValueError:
            info = tests
    language = info.get("language") if isinstance(info, dict) else None
    out = {"tests": tests if isinstance(tests, str) else json.dumps(tests)}
    for role in ("entry_point", "starter_code", "language"):
        value = row.get(cols[role]) if role in cols else None
        out[role] = str(value) if value not in (None, "") else None
    out["language"] = out["language"] or language
    return out


def _prompt_id(value: Any, prompt: list[dict[str, str]]) -> str:
    """The source's id, else a hash of the problem: samples of one problem share it. In a multi-turn chat
    the earlier turns count too, so two conversations ending in the same "go on" stay apart."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    turns = [turn["content"] for turn in prompt if turn["role"] != "system"]
    return hashlib.sha1("\n\x00".join(turns).encode()).hexdigest()[:12]


def _reference(row: Row, layout: Layout, at: str) -> tuple[str | None, str | None]:
    """(reference answer, why there is none): a missing answer is counted later, not an error here."""
    if layout.answers == "none":
        return None, "no reference answers (filter.answer_from none)"
    column = layout.columns["answer" if layout.answers == "column" else "solution"]
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"empty {column}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DistillError(
            f"{at}: column {column!r} must be a string or number, got {type(value).__name__}; "
            f"name another with filter.columns.{'answer' if layout.answers == 'column' else 'solution'}"
        )
    if layout.answers == "column":
        return str(value), None
    boxed = last_boxed(str(value))
    if boxed:
        return boxed, None
    bare = bare_answer(str(value))
    return (bare, None) if bare else (None, f"no \\boxed{{}} in {column}")


def bare_answer(text: str) -> str | None:
    """A solution column that holds the answer itself ("42", "\\frac{1}{2}", "$x=3$", "Evelyn"), not a worked
    solution: one line of at most 64 characters with at most two words (LaTeX commands are not words), so
    "By induction on n." or "Add them." is a solution without an answer."""
    value = text.strip().strip("$").strip()
    if not value or "\n" in value or len(value) > 64:
        return None
    words = re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", value)
    return value if len(words) <= (1 if value.endswith(".") else 2) else None


def _text(row: Row, column: str, at: str) -> str | None:
    value = row.get(column)
    if value is not None and not isinstance(value, str):
        raise DistillError(f"{at}: column {column!r} must be text, got {type(value).__name__}")
    return value if value and value.strip() else None


def _system(row: Row, cols: dict[str, str], at: str) -> list[dict[str, str]]:
    text = _text(row, cols["system"], at) if "system" in cols else None
    return [{"role": "system", "content": text}] if text else []


def _problem_prompt(row: Row, cols: dict[str, str], at: str) -> list[dict[str, str]]:
    problem = _text(row, cols["problem"], at)
    if problem is None:
        raise DistillError(f"{at}: column {cols['problem']!r} is empty; every row needs its problem")
    return [*_system(row, cols, at), {"role": "user", "content": problem}]


Item = tuple[list[dict[str, str]], str, dict[str, Any]]


def _generations(row: Row, cols: dict[str, str], at: str, unused: Counter[str]) -> Iterator[Item]:
    column = cols["generations"]
    texts = row.get(column)
    if not isinstance(texts, list):
        raise DistillError(
            f"{at}: column {column!r} must be a list of generations, got {type(texts).__name__}"
        )
    if not texts:
        unused[f"empty {column} list"] += 1
    parallel = {name: _paired(row, cols, role, texts, at) for name, role in _PAIRED.items()}
    prompt = _problem_prompt(row, cols, at)
    for position, text in enumerate(texts):
        if text is not None and not isinstance(text, str):
            raise DistillError(f"{at}: {column}[{position}] must be text, got {type(text).__name__}")
        if not text or not text.strip():
            unused[f"empty generation in {column}"] += 1
            continue
        yield prompt, text, {"position": position, **{k: v[position] for k, v in parallel.items()}}


_PAIRED = {"source_correct": "verdicts", "finish_reason": "finish_reasons"}


def _paired(row: Row, cols: dict[str, str], role: str, texts: list, at: str) -> list[Any]:
    """A per-generation list (verdicts, finish reasons) that must pair up with the generations item by item."""
    column, of = cols.get(role), cols["generations"]
    values = row.get(column) if column else None
    if values is None:  # absent, or null for this row (OpenR1's correctness_llama often is)
        return [None] * len(texts)
    if not isinstance(values, list) or len(values) != len(texts):
        size = f"{len(values)} items" if isinstance(values, list) else f"a {type(values).__name__}"
        raise DistillError(
            f"{at}: {of} has {len(texts)} items but {column} has {size}; the lists must pair up item by item "
            f"(or name another column with filter.columns)"
        )
    kind = bool if role == "verdicts" else str
    for position, value in enumerate(values):
        if value is not None and not isinstance(value, kind):
            expected = "true/false" if kind is bool else "text"
            raise DistillError(
                f"{at}: {column}[{position}] is a {type(value).__name__}; expected {expected} per generation"
            )
    return values


def _chat(turns: list[dict[str, str]], column: str, at: str) -> tuple[list[dict[str, str]], str]:
    """(prompt turns up to and including the last user turn, the assistant's answer to it)."""
    users = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
    if not users:
        raise DistillError(f"{at}: {column} has no user turn; expected a problem from the user")
    last = users[-1]
    if last + 1 >= len(turns) or turns[last + 1]["role"] != "assistant":
        raise DistillError(
            f"{at}: {column} has no assistant turn after the last user turn; every row needs the answer to train on"
        )
    if last + 2 < len(turns):
        raise DistillError(
            f"{at}: {column} goes on after the assistant's answer to the last user turn "
            f"({len(turns) - last - 2} more turn(s)); expected the conversation to end there"
        )
    return turns[: last + 1], turns[last + 1]["content"]


def _turns(row: Row, column: str, keys: tuple[str, str], at: str) -> list[dict[str, str]]:
    value = row.get(column)
    if not isinstance(value, list):
        raise DistillError(f"{at}: column {column!r} must be a list of turns, got {type(value).__name__}")
    role_key, text_key = keys
    turns = []
    for position, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get(role_key), str):
            raise DistillError(
                f"{at}: {column}[{position}] must be an object with {role_key!r} and {text_key!r}"
            )
        if not isinstance(turn.get(text_key), str):
            raise DistillError(
                f"{at}: {column}[{position}] {text_key!r} must be text, got {type(turn.get(text_key)).__name__}"
            )
        turns.append({"role": turn[role_key], "content": turn[text_key]})
    return turns


def _messages(row: Row, cols: dict[str, str], at: str, unused: Counter[str]) -> Iterator[Item]:
    prompt, completion = _chat(_turns(row, cols["messages"], ("role", "content"), at), cols["messages"], at)
    yield _with_system(row, cols, prompt, at), completion, {}


def _conversations(row: Row, cols: dict[str, str], at: str, unused: Counter[str]) -> Iterator[Item]:
    column = cols["conversations"]
    turns = _turns(row, column, ("from", "value"), at)
    for position, turn in enumerate(turns):
        if turn["role"].lower() not in _SHAREGPT_ROLES:
            raise DistillError(
                f"{at}: {column}[{position}] is from {turn['role']!r}; expected one of {', '.join(_SHAREGPT_ROLES)}"
            )
        turn["role"] = _SHAREGPT_ROLES[turn["role"].lower()]
    prompt, completion = _chat(turns, column, at)
    yield _with_system(row, cols, prompt, at), completion, {}


def _with_system(
    row: Row, cols: dict[str, str], prompt: list[dict[str, str]], at: str
) -> list[dict[str, str]]:
    # A system column (OpenThoughts) comes first, unless the conversation already opens with its own.
    return prompt if prompt[0]["role"] == "system" else [*_system(row, cols, at), *prompt]


def _reasoning_columns(row: Row, cols: dict[str, str], at: str, unused: Counter[str]) -> Iterator[Item]:
    reasoning = row.get(cols["reasoning"])
    if isinstance(reasoning, list):  # s1K keeps its one trajectory in a list
        if len(reasoning) != 1:
            raise DistillError(
                f"{at}: column {cols['reasoning']!r} holds {len(reasoning)} texts; expected one reasoning text"
            )
        reasoning = reasoning[0]
    if reasoning is not None and not isinstance(reasoning, str):
        raise DistillError(f"{at}: column {cols['reasoning']!r} must be text, got {type(reasoning).__name__}")
    final = _text(row, cols["final"], at)
    prompt = _problem_prompt(row, cols, at)
    if not reasoning or not reasoning.strip():
        unused[f"empty {cols['reasoning']}"] += 1
    elif final is None:
        unused[f"empty {cols['final']}"] += 1
    else:
        yield prompt, assemble_completion(final, reasoning), {}


_READERS = {
    "generations": _generations,
    "messages": _messages,
    "conversations": _conversations,
    "reasoning_columns": _reasoning_columns,
}


def read_custom(
    raw: list[Row], layout: Layout, where: str, start: int = 0, seen: Counter[str] | None = None
) -> list[Row]:
    """One trace per row in our own column names, after renaming with filter.columns (format custom)."""
    columns = layout.columns
    renamed = {theirs: ours for ours, theirs in columns.items()}
    # A mapped column replaces any column that already has our name ({answer: gold} drops the file's `answer`).
    rows = [
        {renamed.get(key, key): value for key, value in row.items() if key in renamed or key not in columns}
        for row in raw
    ]
    coded = any(c in rows[0] for c in CODE_COLUMNS["tests"])
    wanted = ("answer", "completion") if layout.answers == "column" and not coded else ("completion",)
    missing = [c for c in wanted if c not in rows[0]]
    if "problem" not in rows[0] and "messages" not in rows[0]:
        missing.append("problem")
    if missing:
        raise DistillError(
            f"{where}: missing column(s) {', '.join(missing)} (found: {', '.join(sorted(raw[0]))}); map them "
            f"with filter.columns, e.g. filter.columns.{missing[0]}=<your column>, set filter.format to one of "
            "generations, messages, conversations, reasoning_columns, or filter.answer_from=none to go without "
            "reference answers"
        )
    code_cols = {role: next((c for c in names if c in rows[0]), None) for role, names in CODE_COLUMNS.items()}
    code_cols = {role: column for role, column in code_cols.items() if column}
    if "tests" in code_cols:  # a code set: its tests under our names (code_fields)
        for row in rows:
            row.update(code_fields(row, code_cols))
    if layout.answers != "column":  # the rows carry our names now: read the reference under them
        ours = Layout("custom", False, {"answer": "answer", "solution": "solution"}, layout.answers)
        for index, row in enumerate(rows):
            row["answer"], row["answer_missing"] = _reference(row, ours, f"{where}: row {start + index + 1}")
    check_values(rows, where, answers=layout.answers == "column" and not coded, start=start)
    seen = Counter() if seen is None else seen
    for number, row in enumerate(rows, start + 1):
        if not isinstance(row.get("problem", ""), str):
            raise DistillError(
                f"{where}: row {number}: problem must be a string, got {type(row['problem']).__name__}; "
                "fix the data or map another column with filter.columns.problem"
            )
        problem = problem_text(row)
        row.setdefault("problem", problem)
        if row.get("prompt_id") is None:  # samples of one problem share an id derived from its text
            row["prompt_id"] = hashlib.sha1(problem.encode()).hexdigest()[:12]
        row["prompt_id"] = str(row["prompt_id"])
        if row.get("sample_idx") is None:
            row["sample_idx"] = seen[row["prompt_id"]]
        seen[row["prompt_id"]] += 1
        row["source_row"] = number - 1
        if not row.get("messages"):
            row["messages"] = [
                {"role": "user", "content": problem},
                {"role": "assistant", "content": row["completion"]},
            ]
    return rows


def check_values(rows: list[Row], where: str, answers: bool = True, start: int = 0) -> None:
    """Every row has a completion string and, when ``answers``, a non-empty answer (numbers become text);
    a code row (with ``tests``) needs no answer. ``start``: the first row's position in its source."""
    for number, row in enumerate(rows, start + 1):
        answer = row.get("answer")
        if isinstance(answer, int | float) and not isinstance(answer, bool):
            row["answer"] = str(answer)  # AMC-style numeric answers: the verifier compares them as numbers
        elif (
            answers
            and row.get("tests") in (None, "", [], {})
            and (not isinstance(answer, str) or not answer.strip())
        ):
            raise DistillError(
                f"{where}: row {number}: answer must be a non-empty string or number, got "
                f"{answer!r:.40}; fix the data or map another column with filter.columns.answer"
            )
        if not isinstance(row.get("completion"), str):
            raise DistillError(
                f"{where}: row {number}: completion must be a string, got "
                f"{type(row.get('completion')).__name__}; fix the data or filter.columns.completion"
            )
