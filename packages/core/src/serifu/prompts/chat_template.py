"""The base model's own chat template (``tokenizer.apply_chat_template``) as a prompt template.

Hub models and model folders that no plugin describes used to fall back silently to the
LINE format. :func:`template_for` now picks, in order: the plugin's template; the
tokenizer's own ``chat_template``; the template known for the folder's ``model_type``;
and only then LINE, with a warning saying so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from serifu.errors import SerifuError

_MARK = "\ue000SERIFU\ue001"
"""A private-use marker no template changes, to find where a reply ends."""


class ChatTemplate:
    """Renders with the tokenizer's Jinja chat template (id ``chat-template``)."""

    id = "chat-template"
    description = "the model's own chat template (tokenizer.apply_chat_template)"

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise SerifuError("this tokenizer has no chat_template")
        self.tokenizer = tokenizer
        self.system_role = self._accepts_system()
        self.reply_end = self._reply_end()

    def _apply(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        text = str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        )
        bos = getattr(self.tokenizer, "bos_token", None)
        return text.removeprefix(bos) if bos else text  # the tokenizer adds BOS itself

    def _accepts_system(self) -> bool:
        try:
            text = self._apply(
                [{"role": "system", "content": _MARK}, {"role": "user", "content": "q"}], True
            )
        except Exception:  # e.g. jinja2 TemplateError "System role not supported"
            return False
        return _MARK in text

    def _reply_end(self) -> str:
        """What the template writes after an assistant message (always ending in a newline)."""
        text = self._apply(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": _MARK}], False
        )
        after = text.split(_MARK, 1)[1] if _MARK in text else ""
        after = after.rstrip(" ")
        return after if after.endswith("\n") else after + "\n"

    def messages(
        self, query: str, system: str | None, history: Sequence[tuple[str, str]]
    ) -> list[dict[str, str]]:
        turns = [*history, (query, None)]
        out: list[dict[str, str]] = []
        if system and self.system_role:
            out.append({"role": "system", "content": system})
        for i, (user_line, reply) in enumerate(turns):
            text = (
                f"{system}\n\n{user_line}"
                if (system and not self.system_role and i == 0)
                else user_line
            )
            out.append({"role": "user", "content": text})
            if reply is not None:
                out.append({"role": "assistant", "content": reply})
        return out

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str:
        return self._apply(self.messages(query, system, history), True)


def template_for(base: Any, tokenizer: Any) -> Any:
    """The prompt template for a resolved base (:class:`serifu.modeling.ResolvedBase`)."""
    from serifu import plugins

    if base.plugin is not None:
        return plugins.get_prompt_template(base.template)
    if getattr(tokenizer, "chat_template", None):
        return ChatTemplate(tokenizer)
    if base.template == "line":
        warnings.warn(
            f"{base.id}: no plugin template and no chat_template in its tokenizer; "
            "using the LINE format ('ユーザー: …\\nシステム: ')",
            stacklevel=2,
        )
    return plugins.get_prompt_template(base.template)


# -- the other way: Serifu's template as a Jinja chat_template for exported tokenizers -----
# Only tags and expressions, no literal text between them: HF renders with trim_blocks and
# lstrip_blocks, which would eat literal newlines.
_SYSTEM = (
    "{% set ns = namespace(system='', first=true) %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{% set ns.system = ns.system ~ ('\\n\\n' if ns.system else '') ~ m['content'] %}"
    "{% endif %}{% endfor %}"
)
"""Every system message, joined by a blank line (as Serifu joins her card and a client's)."""
_SYSTEM_LINES = "{% if ns.system %}{{ ns.system ~ '\\n' }}{% endif %}"
"""LINE and novel: the system text on the lines before the first turn."""


def _lit(text: str) -> str:
    """``text`` as a Jinja string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _turns(user: str, assistant: str, generation: str) -> str:
    """The loop over user/assistant messages (Jinja expressions); ``user`` may use
    ``head``: the system text on the first user turn, '' after it."""
    return (
        "{% for m in messages %}{% if m['role'] == 'user' %}"
        "{% set head = ns.system if ns.first else '' %}{% set ns.first = false %}"
        f"{{{{ {user} }}}}"
        f"{{% elif m['role'] == 'assistant' %}}{{{{ {assistant} }}}}{{% endif %}}{{% endfor %}}"
        f"{{% if add_generation_prompt %}}{{{{ {generation} }}}}{{% endif %}}"
    )


def jinja_chat_template(template: Any, character: str, *, bos: bool) -> str | None:
    """A Jinja ``chat_template`` that renders a system + user (+ history) conversation
    exactly as Serifu's built-in ``template`` does, after ``bos_token`` when ``bos`` (Serifu's
    encoding lets the tokenizer add BOS; ``apply_chat_template`` tokenizes without special
    tokens). ``character`` names her in the novel template. Front ends send her card's
    system prompt as the system message. None for a template of unknown form (a plugin's
    own); a :class:`ChatTemplate` is the tokenizer's own template already.
    """
    start = _SYSTEM + ("{{ bos_token }}" if bos else "")
    c = "m['content']"
    tid = getattr(template, "id", None)
    if tid == "line":
        user, assistant = _lit(template.user + ": "), _lit(template.assistant + ": ")
        return (
            start
            + _SYSTEM_LINES
            + _turns(f"{user} ~ {c} ~ '\\n'", f"{assistant} ~ {c} ~ '\\n'", assistant)
        )
    if tid == "llama2":
        sys_block = "('<<SYS>>\\n' ~ head ~ '\\n<</SYS>>\\n\\n' if head else '')"
        return start + _turns(f"'[INST] ' ~ {sys_block} ~ {c} ~ ' [/INST] '", f"{c} ~ '\\n'", "''")
    if tid == "novel":
        p, name = _lit(template.protagonist + "「"), _lit(character + "「")
        return (
            start + _SYSTEM_LINES + _turns(f"{p} ~ {c} ~ '」\\n'", f"{name} ~ {c} ~ '」\\n'", name)
        )
    if tid == "gemma":
        return start + _turns(
            f"'<start_of_turn>user\\n' ~ (head ~ '\\n\\n' if head else '') ~ {c} ~ '<end_of_turn>\\n'",
            f"'<start_of_turn>model\\n' ~ {c} ~ '<end_of_turn>\\n'",
            "'<start_of_turn>model\\n'",
        )
    return None
