"""Code eval sets read through their Hub ids: MBPP and LiveCodeBench, mapped to distill.verify's test shapes.

Each set is read from, in order: the task's ``dataset_kwargs.data_file`` (a file of the published shape),
``<data_dir>/<name>/test.jsonl`` (``eval.data_dir``, else ``$DISTILL_BENCHMARKS``, else
``../shared/benchmarks``), else its Hub id. Offline (``HF_HUB_OFFLINE``) without a local file is one line.

- MBPP (``google-research-datasets/mbpp``, config ``sanitized``: 257 test problems; ``full``: 500): the
  description (``prompt``, or ``text`` in ``full``) and its three ``test_list`` asserts make the prompt, as in
  Austin et al. 2021; the asserts are the tests (one test each), run after ``test_imports`` /
  ``test_setup_code`` and the program.
- LiveCodeBench (``livecodebench/code_generation_lite``, the ``test*.jsonl`` release files): public and
  private test cases (JSON text, or the base64 zlib-compressed pickle of that JSON text the later releases
  use) with ``testtype`` ``stdin`` (stdin/stdout pairs) or ``functional`` (LeetCode: each input line is one
  JSON argument of ``Solution().<metadata.func_name>``, the output a JSON value). ``since`` / ``until``
  select problems by ``contest_date`` (the window a model's training could not have seen).

Rows come out as docs with ``tests`` (JSON text in a shape ``distill.verify.code_problem`` reads), ``setup``
(code run before the program) and the prompt fields; ``eval/tasks/utils.py`` scores them with
``verify_code_many``, the checker humaneval, the filter and the GRPO reward use.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.benchmarks import default_data_dir, hub_offline
from distill.errors import DistillError
from distill.records import read_rows

HERE = Path(__file__).parent / "tasks"
# What LiveCodeBench's own harness puts before every program (its standard-library import header).
LCB_SETUP = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


@dataclass(frozen=True)
class CodeSet:
    name: str
    hub_id: str
    config: str | None
    split: str
    data_files: str | None = None  # a glob in the Hub repo, read as json (sets published as jsonl files)


CODE_SETS = {
    s.name: s
    for s in (
        CodeSet("mbpp", "google-research-datasets/mbpp", "sanitized", "test"),
        CodeSet("livecodebench", "livecodebench/code_generation_lite", None, "train", "test*.jsonl"),
    )
}


def local_file(name: str, data_file: str | None = None, data_dir: str | None = None) -> Path | None:
    """``data_file`` (relative to eval/tasks/, or absolute), else ``<data_dir>/<name>/test.jsonl``."""
    if data_file:
        path = Path(data_file) if Path(data_file).is_absolute() else HERE / data_file
        if not path.is_file():
            raise DistillError(
                f"eval.tasks: {name}: data_file {path} not found; fix dataset_kwargs.data_file"
            )
        return path
    folder = Path(data_dir) if data_dir else default_data_dir()
    path = folder / name / "test.jsonl" if folder else None
    return path if path is not None and path.is_file() else None


def check_available(name: str, data_dir: str | None, data_file: str | None = None) -> None:
    """One line when there is no local copy and the Hub is offline (the loaders' and the preflight's check)."""
    if local_file(name, data_file, data_dir) is None and hub_offline():
        where = (
            f"{data_dir or default_data_dir() or '<eval.data_dir or $DISTILL_BENCHMARKS>'}/{name}/test.jsonl"
        )
        raise DistillError(
            f"eval: {name}: {where} not found and the Hub is offline (HF_HUB_OFFLINE), so "
            f"{CODE_SETS[name].hub_id} cannot be read; put a file of its published shape there"
        )


def task_data_file(name: str) -> str | None:
    """The ``dataset_kwargs.data_file`` of our task YAML for ``name`` (for the preflight), if it sets one."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    task = yaml.load((HERE / f"{name}.yaml").read_text(), Loader=Loader)
    return (task.get("dataset_kwargs") or {}).get("data_file")


def raw_rows(name: str, data_file: str | None, data_dir: str | None) -> list[dict[str, Any]]:
    check_available(name, data_dir, data_file)
    path = local_file(name, data_file, data_dir)
    if path is not None:
        return read_rows(path)
    spec = CODE_SETS[name]
    import datasets

    try:
        if spec.data_files:
            files = f"hf://datasets/{spec.hub_id}/{spec.data_files}"
            return list(datasets.load_dataset("json", data_files=files, split=spec.split))
        return list(datasets.load_dataset(spec.hub_id, spec.config, split=spec.split))
    except Exception as exc:  # unreachable, renamed, no access: fixed by a local file
        raise DistillError(
            f"eval: {name}: cannot load {spec.hub_id} ({type(exc).__name__}); put a file of its published "
            f"shape at <eval.data_dir>/{name}/test.jsonl"
        ) from None


# ---- MBPP ----


def mbpp_doc(row: dict[str, Any], index: int) -> dict[str, Any]:
    tests = [str(t) for t in row["test_list"]]
    setup = "\n".join(row.get("test_imports") or [])
    if row.get("test_setup_code"):
        setup = f"{setup}\n{row['test_setup_code']}".strip()
    code = str(row.get("code") or "")
    return {
        "id": str(row.get("task_id", index)),
        "problem": str(row.get("prompt") or row.get("text") or ""),
        "answer": code,
        "tests": json.dumps(tests),
        "setup": setup,
        "entry_point": _tested_function(code, tests) or "",
        "starter_code": "",
    }


def _tested_function(code: str, tests: list[str]) -> str | None:
    """The function of the reference code that the first test calls (MBPP rows do not name it)."""
    names = re.findall(r"^def\s+(\w+)\s*\(", code, re.M)
    called = next((n for n in names if tests and re.search(rf"\b{re.escape(n)}\s*\(", tests[0])), None)
    if called:
        return called
    match = re.search(r"assert\s+(?:\w+\()*\s*(\w+)\s*\(", tests[0]) if tests else None
    return match.group(1) if match else (names[0] if names else None)


# ---- LiveCodeBench ----


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):  # the payload is a str: refuse anything that would run code
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a test-case payload")


def decode_cases(value: Any) -> list[dict[str, Any]]:
    """LiveCodeBench test cases: a list, JSON text, or base64(zlib(pickle(JSON text)))."""
    if isinstance(value, list):
        return value
    text = str(value or "").strip()
    if not text:
        return []
    if text[:1] == "[":
        return json.loads(text)
    payload = _NoGlobals(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
    return json.loads(payload) if isinstance(payload, str | bytes) else payload


def livecodebench_doc(row: dict[str, Any], index: int) -> dict[str, Any]:
    cases = decode_cases(row.get("public_test_cases")) + decode_cases(row.get("private_test_cases"))
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata or "{}")
    functional = bool(cases) and all(c.get("testtype") == "functional" for c in cases)
    if functional:
        tests: Any = {
            "inputs": [[json.loads(line) for line in c["input"].split("\n") if line.strip()] for c in cases],
            "outputs": [[json.loads(c["output"])] for c in cases],  # one-element lists: the checker unwraps
            "fn_name": f"Solution().{metadata['func_name']}",
        }
    else:
        tests = [{"input": c["input"], "output": c["output"]} for c in cases]
    return {
        "id": str(row.get("question_id", index)),
        "problem": str(row["question_content"]),
        "answer": "",
        "tests": json.dumps(tests),
        "setup": LCB_SETUP,
        "entry_point": "",
        "starter_code": str(row.get("starter_code") or ""),
        "platform": str(row.get("platform") or ""),
        "difficulty": str(row.get("difficulty") or ""),
        "contest_date": str(row.get("contest_date") or ""),
    }


def in_window(doc: dict[str, Any], since: str | None, until: str | None) -> bool:
    """``since`` <= contest_date < ``until`` (ISO dates; a bound left out is open)."""
    day = doc["contest_date"][:10]
    return (not since or day >= since) and (not until or day < until)


def load_docs(name: str, data_file: str | None, data_dir: str | None, **window) -> list[dict[str, Any]]:
    rows = raw_rows(name, data_file, data_dir)
    if name == "mbpp":
        docs = [mbpp_doc(row, i) for i, row in enumerate(rows)]
    else:
        docs = [livecodebench_doc(row, i) for i, row in enumerate(rows)]
        docs = [d for d in docs if in_window(d, window.get("since"), window.get("until"))]
    if not docs:
        raise DistillError(
            f"eval: {name}: no problems read (window {window or 'none'}); check the file or dataset_kwargs"
        )
    return docs
