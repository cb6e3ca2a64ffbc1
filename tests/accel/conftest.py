"""Fixtures of the accel tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def split_kv_models() -> Iterator[dict[str, Any]]:
    """The four tiny architectures in eval mode, their attention Serifu's split-key one (on the
    CPU its ops run the split algorithm in PyTorch); back to sdpa, unfolded, afterwards."""
    from serifu.accel.rope_fold import drop_rope
    from serifu.accel.split_kv import use_split_kv
    from tests.accel.test_accel import _models

    built = _models()
    for model in built.values():
        model.eval()
        assert use_split_kv(model)
    yield built
    for model in built.values():
        drop_rope(model)
        model.set_attn_implementation("sdpa")
