"""The shared base of every recipe section: ``Section`` (unknown keys rejected), the two field markers that
decide what a stage's fingerprint sees (``runtime``: never; ``added``: only when set), and validators several
sections use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic_core import PydanticUndefined


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_serializer(mode="wrap")
    def _without_unset_additions(self, handler):
        # What the fingerprints of recipe.section() and the recipe digest are computed from: see ``added``.
        out = handler(self)
        for name in type(self).model_fields:
            if name in out and at_added_default(self, name):
                del out[name]
        return out


def added(default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A field added after runs existed: declared with this instead of ``Field`` so that, while it is at its
    default, it is left out of the section's dump and of every fingerprint; a recipe that does not use it keeps
    the fingerprints its runs were recorded with (tests/distill/test_fingerprints.py), and setting it reruns
    what it changes."""
    return Field(default, json_schema_extra={"added": True}, **kwargs)


def at_added_default(value: BaseModel, name: str) -> bool:
    field = type(value).model_fields[name]
    extra = field.json_schema_extra
    if not (isinstance(extra, dict) and extra.get("added")):
        return False
    return getattr(value, name) == field.get_default(call_default_factory=True)


def runtime(default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A field that changes no produced artifact (where to log, how often to checkpoint, which endpoint or
    node): declared with this instead of ``Field`` so that the run fingerprint leaves it out, and changing it
    resumes a stage instead of redoing it."""
    return Field(default, json_schema_extra={"runtime": True}, **kwargs)


SANDBOXES = ("auto", "local", "forkserver", "bwrap")


def sandbox_field() -> Any:
    """The code sandbox's runner (distill/verify/code.py ``default_runner``; docs/sandbox.md): which protections
    a program runs under, never its verdict, so it enters no fingerprint and an unset one no recipe digest."""
    return Field(
        "auto",
        json_schema_extra={"runtime": True, "added": True},
        description="Runner of the programs: auto (the fork server as root, else local), local, forkserver or "
        "bwrap (bubblewrap); the DISTILL_SANDBOX environment variable decides when this is auto.",
    )


def is_runtime(section: type[BaseModel], name: str) -> bool:
    extra = section.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("runtime"))


def runtime_free(value: Any) -> Any:
    """``value`` as JSON (like ``model_dump(mode="json")``) without its runtime-only fields and its ``added``
    fields at their defaults, at any depth: what a stage's fingerprint is computed from."""
    if isinstance(value, BaseModel):
        return {
            name: runtime_free(getattr(value, name))
            for name in type(value).model_fields
            if not is_runtime(type(value), name) and not at_added_default(value, name)
        }
    if isinstance(value, list | tuple):
        return [runtime_free(item) for item in value]
    if isinstance(value, dict):
        return {key: runtime_free(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    from pydantic import TypeAdapter

    return TypeAdapter(type(value)).dump_python(value, mode="json")


def check_answer_fallback(value: str) -> str:
    """The verifier's rule when an answer has no \\boxed{}: none | last_number | regex:<pattern> (compiled)."""
    if value not in ("none", "last_number") and not value.startswith("regex:"):
        raise ValueError("expected none, last_number or regex:<pattern>")
    if value.startswith("regex:"):
        import re

        try:
            re.compile(value[len("regex:") :])
        except re.error as exc:
            raise ValueError(f"invalid regex ({exc})") from None
    return value


def tracker_list(value: Any) -> Any:
    """``report_to`` as a list: "none" (or null) is no tracker, one name is a list of one."""
    if value in ("none", None):
        return []
    return [value] if isinstance(value, str) else value


def check_key_env_name(data: Any) -> Any:
    """api_key_env must name a variable. Checked on the raw section so the error never echoes a pasted key."""
    name = data.get("api_key_env") if isinstance(data, dict) else None
    if name is not None and not (isinstance(name, str) and name.isidentifier() and name.isascii()):
        raise ValueError(
            "api_key_env must be the name of an environment variable that holds the key, never the key itself"
        )
    return data
