"""The CLI's shape, its error contract, config validation and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .plugin_env import run_cli

HEAVY = ("torch", "transformers", "textual", "peft", "datasets", "sklearn", "matplotlib")


def test_import_and_help_do_not_import_heavy_libraries() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import serifu, serifu.plugins, serifu.config\n"
        "from serifu.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    rc = main(['--help'])\n"
        "assert rc == 0 and 'plugins' in out.getvalue(), out.getvalue()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_help_lists_command_groups() -> None:
    proc = run_cli(["--help"])
    assert proc.returncode == 0
    for group in ("plugins", "doctor", "config", "characters", "play"):
        assert group in proc.stdout


def test_unknown_command_exits_2() -> None:
    proc = run_cli(["no-such-command"])
    assert proc.returncode == 2 and "No such command" in proc.stderr


def test_config_schema_is_json_schema() -> None:
    proc = run_cli(["config", "schema"])
    schema = json.loads(proc.stdout)
    assert schema["additionalProperties"] is False
    assert {"data", "train", "eval"} <= set(schema["properties"])


def test_config_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "serifu.toml"
    cfg.write_text("[train]\nepochz = 2\n", encoding="utf-8")
    proc = run_cli(["config", "show", "--config", str(cfg)])
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "train.epochz" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_wrong_type_and_bad_value(tmp_path: Path) -> None:
    cfg = tmp_path / "serifu.toml"
    cfg.write_text("[train]\nepochs = 'many'\n[train.lora]\ndropout = 2.0\n", encoding="utf-8")
    proc = run_cli(["config", "show", "--config", str(cfg)])
    assert proc.returncode == 2
    assert "train.epochs" in proc.stderr and "train.lora.dropout" in proc.stderr
    assert "less than 1" in proc.stderr


def test_config_is_read_from_cwd_and_overridden(tmp_path: Path) -> None:
    (tmp_path / "serifu.toml").write_text("[train]\nepochs = 2\nbatch_size = 4\n", encoding="utf-8")
    proc = run_cli(
        ["config", "show", "--set", "train.batch_size=16", "--set", "train.lora.r=8"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert (
        cfg["train"]["epochs"] == 2
        and cfg["train"]["batch_size"] == 16
        and cfg["train"]["lora"]["r"] == 8
    )


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[train\n", encoding="utf-8")
    proc = run_cli(["config", "show", "--config", str(cfg)])
    assert proc.returncode == 2 and "bad.toml" in proc.stderr and "not valid TOML" in proc.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli(["--debug", "config", "show", "--config", str(tmp_path / "missing.toml")])
    assert (
        proc.returncode == 2
        and "Traceback" in proc.stderr
        and "config file not found" in proc.stderr
    )


def test_doctor_reports_each_piece() -> None:
    proc = run_cli(["doctor"])
    for piece in (
        "python",
        "torch",
        "transformers",
        "peft",
        "bitsandbytes",
        "serifu cache",
        "gemma-3-270m",
    ):
        assert piece in proc.stdout
    assert proc.returncode in (0, 1)
