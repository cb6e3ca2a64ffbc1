"""`pip install serifu` (no extras): the data pipeline, config and CLI work without the heavy libraries.

The heavy libraries are hidden from the import system of a subprocess (as if not
installed); commands that need them say which extra to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HIDDEN = [
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "sklearn",
    "skops",
    "matplotlib",
    "fugashi",
    "tensorboard",
    "bm25s",
    "tokenizers",
    "safetensors",
]

RUNNER = f"""
import importlib.machinery, sys

class Hidden(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {set(HIDDEN)!r}:
            return None
        return super().find_spec(name, path, target)

sys.meta_path[:] = [Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
from serifu.cli import main
code = main(sys.argv[1:])
leaked = sorted({{m.split(".")[0] for m in sys.modules}} & {set(HIDDEN)!r})
assert not leaked, leaked
sys.exit(code)
"""


def _serifu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SERIFU_LOAD_PLUGINS": ""},
        timeout=300,
    )


def test_data_pipeline_and_config_need_no_extra(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (
        ("--help",),
        ("config", "show"),
        ("plugins",),
        ("data", "build", "--character", "akane", "--out", str(data)),
        ("data", "stats", str(data)),
        ("data", "export", str(data), "--out", str(tmp_path / "msgs")),
    ):
        done = _serifu(*args)
        assert done.returncode == 0, (args, done.stderr[-2000:])
    assert (tmp_path / "msgs" / "train.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("chat", "--character", "akane", "--model", "tiny-llama", "--once", "hi"), "train"),
        (("eval", "classifier", "{script}", "--source", "script"), "eval"),
    ],
)
def test_commands_of_an_extra_say_what_to_install(args: tuple[str, ...], extra: str) -> None:
    from serifu import plugins

    script = str(plugins.get_character("akane").scripts[0])
    done = _serifu(*(a.replace("{script}", script) for a in args))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"pip install 'serifu[{extra}]'" in done.stderr
