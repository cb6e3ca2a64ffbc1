"""The default base model: one setting instead of a model id hard-coded in core.

Resolution: ``$SERIFU_MODEL`` when set, else the first plugin answering the
``default_base_model`` hook (``serifu-models``: ``gemma-3-270m``). Chat without
``--model``, ``serifu quickstart``, ``serifu doctor`` and the game all read
:func:`default_model`.
"""

from __future__ import annotations

import os

from serifu.errors import SerifuError

ENV_VAR = "SERIFU_MODEL"


def default_model() -> str:
    """The base-model id to use when none is named."""
    chosen = os.environ.get(ENV_VAR, "").strip()
    if chosen:
        return chosen
    from serifu import plugins

    answer = plugins.get_plugin_manager().hook.default_base_model()
    if answer:
        return str(answer)
    raise SerifuError(
        "no default base model: no installed plugin names one (install serifu-models, "
        f"set ${ENV_VAR}, or pass --model)"
    )
