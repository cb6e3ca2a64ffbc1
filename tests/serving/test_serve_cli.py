"""``serifu serve`` as a command: it starts, answers, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

httpx = pytest.importorskip("httpx")

SERVE = [sys.executable, "-m", "serifu", "serve"]


def test_serve_starts_answers_and_shuts_down() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*SERVE, "--model", "tiny-gemma", "--character", "akane", "--port", "0", "--device", "cpu"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:  # model loading first; ends when the server says where it is
            if m := re.search(r"serving (.*) on (http://127\.0\.0\.1:\d+/v1)", line):
                assert m.group(1) == "akane, tiny-gemma"
                url = m.group(2)
                break
        assert url is not None, "the server never said where it listens"
        models = httpx.get(f"{url}/models", timeout=60).json()
        assert [m["id"] for m in models["data"]] == ["akane", "tiny-gemma"]
        r = httpx.post(
            f"{url}/chat/completions",
            json={
                "model": "akane",
                "messages": [{"role": "user", "content": "やあ"}],
                "max_tokens": 4,
            },
            timeout=120,
        )
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130  # the CLI's Ctrl-C exit, after a clean shutdown
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_busy_port_is_a_clear_error_before_loading() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*SERVE, "--model", "tiny-gemma", "--character", "akane", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_port_out_of_range_is_a_usage_error() -> None:
    for port in ("65536", "-1"):
        proc = subprocess.run(
            [*SERVE, "--character", "akane", "--port", port],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and "--port" in proc.stderr, port
        assert "Traceback" not in proc.stderr
