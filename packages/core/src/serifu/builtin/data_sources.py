"""Built-in data sources: ``lines``, ``table``, ``aozora-play``, ``script``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_data_sources(register: Callable[[Any], None]) -> None:
    from serifu.data.aozora_play import AozoraPlayReader
    from serifu.data.lines_reader import LinesReader
    from serifu.data.script_reader import ScriptReader
    from serifu.data.table_reader import TableReader

    register(LinesReader())
    register(TableReader())
    register(AozoraPlayReader())
    register(ScriptReader())
