"""THE judge: an LLM over any OpenAI-compatible endpoint, for what no verifier can decide.

- ``templates``: prompt templates as data files (templates/*.yaml), replaceable from the recipe, checked.
- ``parse``: strict verdict-line parsing; a reply that does not parse is ``judge_unparsed``, never a pass.
- ``cache``: content-addressed replies in the run dir, shared by the stages of a run.
- ``client``: ``Judge.ask(use, items)`` with fleet routing, retries, deadlines and usage.
- ``cost`` and ``agreement``: tokens and price; agreement and Cohen's kappa against the verifier.

Uses: filter.judge (teacher/filter/judge_step.py), the GRPO reward ``judge`` (distill/grpo/rewards.py), the
pairwise judged eval (eval/judged.py). Each calls ``check_judge`` in its preflight and ``open_judge`` to run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.judge.agreement import agreement, cohen_kappa
from distill.judge.cache import CACHE_FILE, JudgeCache, call_key
from distill.judge.client import Judge, JudgeResult, judge_key
from distill.judge.cost import JudgeUsage, estimated_usd
from distill.judge.parse import Parsed, parse_reply
from distill.judge.templates import USES, Template, load_template, template_path

JUDGE_DIR = "judge"  # <run dir>/judge/cache.jsonl


def judge_urls(recipe: Any) -> list[str]:
    """judge.base_url, else the teacher's own server (teacher.backend openai), else none."""
    cfg = recipe.judge
    if cfg is not None and cfg.base_urls():
        return cfg.base_urls()
    teacher = recipe.teacher
    if teacher is not None and teacher.backend == "openai":
        return teacher.openai.base_urls
    return []


def judge_fingerprint(cfg: Any, uses: tuple[str, ...] = tuple(USES)) -> dict[str, Any] | None:
    """What decides a verdict: the model, the sampling and each template by content (a shipped template that
    changes reruns the stages that use it); endpoints, keys and prices are runtime-only."""
    if cfg is None:
        return None
    from distill.config.base import runtime_free

    digests = {}
    for use in uses:
        path = template_path(use, cfg.templates)
        digests[use] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {**runtime_free(cfg), "templates": digests}


def check_judge(recipe: Any, where: str, uses: tuple[str, ...]) -> str:
    """The preflight of a stage that uses the judge: a judge section, an endpoint, templates that load and
    ask for their verdict line, and the key's variable set. One-line DistillError; returns a summary."""
    cfg = recipe.judge
    if cfg is None:
        raise DistillError(
            f"{where} uses the judge, but the recipe has no `judge:` section; add judge.model and "
            "judge.base_url (an OpenAI-compatible /v1 endpoint)"
        )
    urls = judge_urls(recipe)
    if not urls:
        raise DistillError(
            f"{where}: judge.base_url is missing; give the judge's endpoint, e.g. http://127.0.0.1:8000/v1 "
            "(or use a teacher with backend openai, whose server is then the default)"
        )
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise DistillError(
                f"judge.base_url {url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1"
            )
    for use in uses:
        load_template(use, cfg.templates)
    if cfg.api_key_env:
        judge_key(cfg.api_key_env)
    return f"judge {cfg.model} at {len(urls)} endpoint(s), templates {', '.join(uses)}"


def open_judge(recipe: Any, run_root: Path | None) -> Judge:
    """The recipe's judge with the run's cache (``<run>/judge/cache.jsonl``; in memory without a run dir)."""
    if recipe.judge is None:
        raise DistillError("the recipe has no `judge:` section (judge.model, judge.base_url)")
    cache = JudgeCache(None if run_root is None else Path(run_root) / JUDGE_DIR / CACHE_FILE)
    return Judge(recipe.judge, judge_urls(recipe), cache)


def judge_job(recipe: Any, run_root: Path) -> dict[str, Any]:
    """The judge as a training job file carries it to another process (the GRPO reward): its section, its
    endpoints and the run's cache file. The key stays in its environment variable."""
    return {
        "config": recipe.judge.model_dump(mode="json"),
        "urls": judge_urls(recipe),
        "cache": str(Path(run_root) / JUDGE_DIR / CACHE_FILE),
    }


__all__ = [
    "CACHE_FILE",
    "JUDGE_DIR",
    "USES",
    "Judge",
    "JudgeCache",
    "JudgeResult",
    "JudgeUsage",
    "Parsed",
    "Template",
    "agreement",
    "call_key",
    "check_judge",
    "cohen_kappa",
    "estimated_usd",
    "judge_fingerprint",
    "judge_job",
    "judge_key",
    "judge_urls",
    "load_template",
    "open_judge",
    "parse_reply",
    "template_path",
]
