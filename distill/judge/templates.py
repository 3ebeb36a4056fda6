"""Judge prompt templates: YAML data files (distill/judge/templates/<use>.yaml), replaceable from the recipe.

A template names its ``output`` kind (verdict | score | pairwise), the ``variables`` it fills (written
``{{name}}`` in ``system`` and ``prompt``; single braces are left alone, so LaTeX such as ``\\boxed{2}`` needs no
escaping) and, for scores, its ``scale``. A template is refused, in one line naming the file, when it uses a
variable its use does not provide, lacks one its use needs, or does not ask for the reply line its output kind
parses (``VERDICT:``, ``SCORE:``, ``WINNER:``): the parser would then count every reply as unparsed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError

SHIPPED = Path(__file__).with_name("templates")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# What a judged text could use to leave its block or speak as someone else: a tag (`</candidate>`, `<system>`,
# `<start_of_turn>`), a chat template's special tokens (`<|im_start|>`, `<｜User｜>`, `[INST]`, `<<SYS>>`).
_TAG = re.compile(r"<((?:\s*/\s*)?[A-Za-z_][^<>\n]{0,80})>")
_CHAT_MARKER = re.compile(r"<\|[^<>\n]{0,60}?\|>|<｜[^<>\n]{0,60}?｜>|\[/?INST\]|<</?SYS>>")


def escape_value(text: str) -> str:
    """A value as it is placed in a template: every tag-like ``<...>`` and chat-template marker written with
    ``&lt;``/``&gt;`` (``[INST]`` as ``&#91;INST&#93;``), so it can neither close its ``<candidate>``-style
    block nor open a chat role; everything else (math, code, ``a < b``) is left as it was."""
    text = _CHAT_MARKER.sub(
        lambda m: (
            m.group(0).replace("<", "&lt;").replace(">", "&gt;").replace("[", "&#91;").replace("]", "&#93;")
        ),
        text,
    )
    return _TAG.sub(lambda m: f"&lt;{m.group(1)}&gt;", text)


# Per use: the output kind it parses and the variables the caller fills in.
USES: dict[str, tuple[str, tuple[str, ...]]] = {
    "equivalence": ("verdict", ("problem", "reference", "answer")),
    "rubric": ("score", ("problem", "response")),
    "readability": ("score", ("problem", "response")),
    "pairwise": ("pairwise", ("problem", "response_a", "response_b")),
}
# What the prompt must ask for, per output kind: the marker the parser looks for.
MARKERS = {"verdict": "VERDICT:", "score": "SCORE:", "pairwise": "WINNER:"}


@dataclass(frozen=True)
class Template:
    use: str
    output: str
    system: str
    prompt: str
    variables: tuple[str, ...]
    scale: tuple[int, int] = (1, 10)
    source: str = ""  # the file it came from
    digest: str = ""  # sha256 of the file's text: the cache key and the fingerprint take it

    def render(self, values: dict[str, Any]) -> list[dict[str, str]]:
        """Chat messages with the values substituted once (a value's own ``{{...}}`` is never expanded) and
        escaped (``escape_value``: a value cannot close its block or start a chat role)."""
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise DistillError(f"{self.source}: no value for {', '.join(missing)} (a bug in the caller)")

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: escape_value(str(values[m.group(1)])), text)

        messages = [{"role": "system", "content": fill(self.system)}] if self.system.strip() else []
        return [*messages, {"role": "user", "content": fill(self.prompt)}]

    def reply_regex(self, reasoning_lines: int) -> str:
        """A whole reply the parser accepts, for constrained decoding (judge.constrain): up to
        ``reasoning_lines`` lines of reasoning, then the verdict line (a score within the scale)."""
        choices = {
            "verdict": "EQUIVALENT|DIFFERENT",
            "score": "|".join(str(n) for n in range(self.scale[0], self.scale[1] + 1)),
            "pairwise": "A|B|TIE",
        }[self.output]
        reasoning = f"([^\\n]*\\n){{0,{reasoning_lines}}}" if reasoning_lines else ""
        return f"{reasoning}{MARKERS[self.output]} ({choices})"


def template_path(use: str, overrides: dict[str, str] | None = None) -> Path:
    if use not in USES:
        raise DistillError(f"unknown judge template use {use!r}; expected {', '.join(USES)}")
    given = (overrides or {}).get(use)
    return Path(given) if given else SHIPPED / f"{use}.yaml"


def load_template(use: str, overrides: dict[str, str] | None = None) -> Template:
    """The template for ``use``: the recipe's file (judge.templates.<use>) or the shipped one, checked."""
    path = template_path(use, overrides)
    where = f"judge.templates.{use} {path}" if (overrides or {}).get(use) else str(path)
    if not path.is_file():
        raise DistillError(f"{where}: template file not found; give a YAML file like {SHIPPED / use}.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DistillError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise DistillError(
            f"{where}: expected a mapping with a `prompt` text (and system, output, variables)"
        )
    kind, provided = USES[use]
    output = data.get("output", kind)
    if output != kind:
        raise DistillError(f"{where}: output {output!r}, but the {use} use parses {kind!r} replies")
    system = str(data.get("system") or "")
    _check_variables(where, system + "\n" + data["prompt"], provided)
    if MARKERS[kind] not in system + data["prompt"]:
        raise DistillError(
            f"{where}: the template never asks for the reply line `{MARKERS[kind]} ...` that {kind} replies "
            f"are parsed by; add it (see {SHIPPED / use}.yaml), or every reply counts as judge_unparsed"
        )
    return Template(
        use=use,
        output=kind,
        system=system,
        prompt=data["prompt"],
        variables=provided,
        scale=_scale(where, data.get("scale", [1, 10])),
        source=str(path),
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _check_variables(where: str, text: str, provided: tuple[str, ...]) -> None:
    used = set(_PLACEHOLDER.findall(text))
    unknown = sorted(used - set(provided))
    if unknown:
        raise DistillError(
            f"{where}: unknown template variable {', '.join('{{' + u + '}}' for u in unknown)}; "
            f"this use provides {', '.join(provided)}"
        )
    absent = [name for name in provided if name not in used]
    if absent:
        raise DistillError(
            f"{where}: the template never shows {', '.join('{{' + a + '}}' for a in absent)}; "
            "the judge cannot judge what it is not given"
        )


def _scale(where: str, value: Any) -> tuple[int, int]:
    ok = isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
    if not ok or value[0] >= value[1]:
        raise DistillError(f"{where}: scale must be [low, high] integers with low < high, got {value!r}")
    return int(value[0]), int(value[1])
