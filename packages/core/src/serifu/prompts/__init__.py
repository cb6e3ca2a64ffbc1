"""Prompt templates: the text a model sees before the character's reply."""

from serifu.prompts.templates import (
    GemmaTemplate,
    LineTemplate,
    Llama2Template,
    NovelTemplate,
    builtin_templates,
    reply_text,
)

__all__ = [
    "GemmaTemplate",
    "LineTemplate",
    "Llama2Template",
    "NovelTemplate",
    "builtin_templates",
    "reply_text",
]
