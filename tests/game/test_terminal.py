"""A real terminal: ``serifu play`` in tmux, Japanese typed with send-keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from serifu import plugins
from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import load_pairs


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True, check=True
    ).stdout


def _flat(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│╭╮╰╯─▎")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_serifu_play_in_tmux_answers_within_5_seconds(tmp_path: Path) -> None:
    serifu = Path(sys.executable).with_name("serifu")
    expected = RetrievalBackend(load_pairs(plugins.get_character("kaede")), seed=0).reply(
        "こんにちは"
    )
    session = f"serifu-test-{uuid.uuid4().hex[:8]}"
    env = ["-e", "LANG=C.UTF-8", "-e", f"SERIFU_HOME={tmp_path}", "-e", "TERM=xterm-256color"]
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            *env,
            f"{serifu} play --character kaede --backend retrieval",
        ],
        check=True,
        env={**os.environ, "TMUX": ""},
    )
    try:
        deadline = time.monotonic() + 30
        while "楓に話しかける" not in _pane(session):  # the input is there and focused
            assert time.monotonic() < deadline, _pane(session)
            time.sleep(0.2)
        subprocess.run(["tmux", "send-keys", "-t", session, "こんにちは", "Enter"], check=True)
        sent = time.monotonic()
        while _flat(expected)[:12] not in _flat(_pane(session)):
            assert time.monotonic() - sent < 5, f"no reply within 5 s:\n{_pane(session)}"
            time.sleep(0.1)
        assert "こんにちは" in _pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
