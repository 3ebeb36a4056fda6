"""Prompts moved down into the core (distill/prompts.py): the grpo student and on_policy students read them
too, and a stage may not import another. Re-exported here so the teacher stages' imports keep working."""

from distill.prompts import (  # noqa: F401
    CODE_FIELDS,
    DEFAULT_TEMPLATE,
    asked_problem,
    assemble_completion,
    build_prompts,
    chat_prompts,
    code_fields,
    data_prompts,
    load_chat_template,
    load_prompt_rows,
    prompt_messages,
    render_messages,
    split_reasoning,
)
