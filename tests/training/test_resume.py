"""Ctrl-C, a double Ctrl-C, a kill between renames: --resume ends with the very adapter of
an uninterrupted run (bit for bit); checkpoints are never lost silently nor unpickled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training import train
from serifu.training.callbacks import Callback
from serifu.training.checkpoint import checkpoints, latest_checkpoint, work_dir

CFG = TrainConfig(
    max_steps=6,
    batch_size=4,
    learning_rate=5e-3,
    save_steps=0,
    eval=False,
    lr_scheduler="cosine",
    report_to="none",
)


@pytest.fixture(scope="module")
def straight(
    dialogue_dir: Path, tmp_path_factory: pytest.TempPathFactory, offline_env: None
) -> dict[str, Any]:
    """The uninterrupted run every resumed one must equal."""
    out = tmp_path_factory.mktemp("straight") / "a"
    result = train("tiny-llama", dialogue_dir, out, CFG, progress=False)
    return {"loss": result.info["loss"], "lora": load_file(str(out / "adapter_model.safetensors"))}


def _interrupt_at(step: int):
    def on_step(done: int, loss: float) -> None:
        if done == step:
            raise KeyboardInterrupt

    return on_step


def assert_same_adapter(out: Path, straight: dict[str, Any], loss: list[float]) -> None:
    assert loss == straight["loss"]
    got = load_file(str(out / "adapter_model.safetensors"))
    assert got.keys() == straight["lora"].keys()
    for key, value in straight["lora"].items():
        assert torch.equal(got[key], value), key


def test_interrupted_and_resumed_equals_uninterrupted(
    dialogue_dir: Path, tmp_path: Path, straight: dict[str, Any]
) -> None:
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, on_step=_interrupt_at(3))
    last = latest_checkpoint(out)
    assert not out.exists() and last is not None and (last / "lora.safetensors").is_file()
    assert json.loads((last / "progress.json").read_text())["step"] == 3
    resumed = train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)
    assert_same_adapter(out, straight, resumed.info["loss"])
    assert not work_dir(out).exists()


class DoubleCtrlCMidStep(Callback):
    """After step ``after``, arm a hook that sends two real SIGINTs from inside the next
    step's forward pass, after LoRA dropout has drawn random numbers."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.fired = False

    def on_step_end(self, trainer: Any, step: int, loss: float) -> None:
        if step != self.after:
            return
        drops = [m for n, m in trainer.model.named_modules() if n.endswith("lora_dropout.default")]

        def hook(module: Any, args: Any, output: Any) -> None:
            if not self.fired:
                self.fired = True
                os.kill(os.getpid(), signal.SIGINT)  # first: "stop after this step"
                os.kill(os.getpid(), signal.SIGINT)  # second: "stop now"

        drops[len(drops) // 2].register_forward_hook(hook)


def test_double_ctrl_c_mid_step_saves_the_last_whole_step(
    dialogue_dir: Path, tmp_path: Path, straight: dict[str, Any]
) -> None:
    out = tmp_path / "c"
    cut = DoubleCtrlCMidStep(after=3)
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, callbacks=[cut])
    assert cut.fired
    last = latest_checkpoint(out)
    assert last is not None and json.loads((last / "progress.json").read_text())["step"] == 3
    resumed = train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)
    assert_same_adapter(out, straight, resumed.info["loss"])


KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import serifu.training.checkpoint as ck
from serifu.config.train import TrainConfig
from serifu.training import train

calls = []
def die(keep):  # the new checkpoint is renamed into place; the old one not yet deleted
    calls.append(keep)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
ck._drop_older = die
cfg = TrainConfig.model_validate_json(sys.argv[3])
train("tiny-llama", Path(sys.argv[1]), Path(sys.argv[2]), cfg, progress=False)
"""


def test_kill_between_checkpoint_renames_leaves_a_usable_checkpoint(
    dialogue_dir: Path, tmp_path: Path, straight: dict[str, Any]
) -> None:
    out = tmp_path / "d"
    cfg = CFG.model_copy(update={"save_steps": 2})
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_BETWEEN_RENAMES,
            str(dialogue_dir),
            str(out),
            cfg.model_dump_json(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    steps = [int(p.name.split("-")[1]) for p in checkpoints(out)]
    assert steps == [2, 4]  # both complete: the old one was still there
    resumed = train("tiny-llama", dialogue_dir, out, cfg, resume=True, progress=False)
    assert_same_adapter(out, straight, resumed.info["loss"])


def test_rerun_without_resume_keeps_the_checkpoint_unless_forced(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, on_step=_interrupt_at(2))
    kept = latest_checkpoint(out)
    assert kept is not None
    with pytest.raises(SerifuError, match=r"checkpoint at step 2.*--resume.*--force"):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False)
    assert latest_checkpoint(out) == kept and (kept / "state.pt").is_file()
    other = CFG.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(SerifuError, match="different model, dataset or training config"):
        train("tiny-llama", dialogue_dir, out, other, resume=True, progress=False)
    assert latest_checkpoint(out) == kept
    cfg = CFG.model_copy(update={"max_steps": 1})
    result = train("tiny-llama", dialogue_dir, out, cfg, progress=False, force=True)
    assert result.steps == 1 and not work_dir(out).exists()


class Boom:
    """Pickles into a call of exec(...) that would write a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_crafted_state_pt_is_rejected_without_running_code(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, on_step=_interrupt_at(2))
    last = latest_checkpoint(out)
    assert last is not None
    marker = tmp_path / "pwned.txt"
    torch.save({"optimizer": Boom(marker), "scheduler": {}, "rng": {}}, last / "state.pt")
    with pytest.raises(SerifuError, match="can load safely") as err:
        train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)
    assert "state.pt" in str(err.value) and "nothing in it ran" in str(err.value)
    assert not marker.exists()
    assert not out.exists()


def test_damaged_progress_json_is_a_clear_error_before_loading(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "g"
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, on_step=_interrupt_at(1))
    last = latest_checkpoint(out)
    assert last is not None
    (last / "progress.json").write_text('{"step": 1, "losses": [', encoding="utf-8")
    with pytest.raises(SerifuError, match=r"progress\.json is damaged"):
        train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)
    (last / "progress.json").write_text('{"step": -4, "losses": []}', encoding="utf-8")
    with pytest.raises(SerifuError, match=r"progress\.json is damaged.*step"):
        train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)


def test_resume_without_checkpoint_is_a_user_error(dialogue_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SerifuError, match="no checkpoint"):
        train("tiny-llama", dialogue_dir, tmp_path / "h", CFG, resume=True, progress=False)


DISK_FULL_AT_THE_END = """
import resource, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training import Callback, train

def fill_disk():  # from now on no file may grow past 1 KiB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))

class FillDisk(Callback):
    def on_step_end(self, trainer, step, loss):
        if sys.argv[4] == "last-step" and step == 6:
            fill_disk()  # the last step's checkpoint fails

    def on_train_end(self, trainer):
        if sys.argv[4] == "adapter":
            fill_disk()  # the last checkpoint is written; the adapter fails

cfg = TrainConfig.model_validate_json(sys.argv[3])
try:
    train("tiny-llama", Path(sys.argv[1]), Path(sys.argv[2]), cfg, progress=False, callbacks=[FillDisk()])
except SerifuError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


@pytest.mark.parametrize(("when", "kept"), [("last-step", 4), ("adapter", 6)])
def test_disk_full_at_the_end_keeps_the_last_checkpoint_and_says_where(
    dialogue_dir: Path, tmp_path: Path, straight: dict[str, Any], when: str, kept: int
) -> None:
    out = tmp_path / "i"
    cfg = CFG.model_copy(update={"save_steps": 2})
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_AT_THE_END, str(dialogue_dir), str(out)]
        + [cfg.model_dump_json(), when],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    # (the limit raises EFBIG, "File too large"; a real full disk says "the disk is full")
    assert re.search("disk is full|File too large", message) and "--resume" in message
    assert f"checkpoint-{kept:08d}" in message and "Traceback" not in proc.stderr
    assert "basic_ios" not in proc.stderr
    assert not out.exists()
    resumed = train("tiny-llama", dialogue_dir, out, cfg, resume=True, progress=False)
    assert_same_adapter(out, straight, resumed.info["loss"])
