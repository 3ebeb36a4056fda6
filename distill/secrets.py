"""Secrets never written: HF tokens and the API keys a recipe names, found at write time and redacted.

distill never holds a token itself (huggingface_hub and the OpenAI clients read them from the environment per
request); ``redact`` is the last line of defence for anything we print or write (the manifest's command,
cards, commit descriptions, error lines), in case a library message or a command line carries one.
"""

from __future__ import annotations

import os
from typing import Any

from distill.errors import DistillError

_SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def secret_values(recipe: dict[str, Any] | None = None) -> list[str]:
    """Values that must never be written: HF tokens (environment or saved login) and the API keys in the
    variables a recipe names (its ``*key_env`` fields, at any depth)."""
    from huggingface_hub import get_token

    values = [os.environ.get(name, "") for name in (*_SECRET_VARIABLES, *_key_variables(recipe or {}))]
    values.append(get_token() or "")
    return sorted({v for v in values if len(v) >= 8}, key=len, reverse=True)


def _key_variables(config: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names |= {v for k, v in node.items() if k.endswith("key_env") and isinstance(v, str)}
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def redact(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "***")
    return text


def key_from_env(env_name: str, field: str) -> str:
    """The API key in the environment variable a recipe names (``field``: where it names it); one line when
    it is unset. The key is sent as a header and never written (see ``secret_values``)."""
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise DistillError(
            f"{field} is {env_name!r}, but that environment variable is not set or empty; export it before running"
        )
    return value
