"""Fixtures of the evaluation tests: the sample cast as a reference corpus, fake runs."""

from __future__ import annotations

import pytest

from serifu.evaluation.run import EvalRun, Reference, Reply

_SHARED: dict = {}
"""One fitted classifier for all fake runs of the session (as within one evaluation)."""


@pytest.fixture(scope="session")
def cast_ref() -> Reference:
    """Every registered heroine's real lines, target kaede (read with the real data pipeline)."""
    from serifu.evaluation.reference import cast_reference

    return cast_reference("kaede")


def make_run(
    texts: list[str],
    reference: Reference,
    *,
    stopped: bool = True,
    answers: list[list[str]] | None = None,
) -> EvalRun:
    """An EvalRun whose replies are ``texts`` (openers), plus one profile reply when ``answers``."""
    replies = [
        Reply("system-prompt-on", "opener", i, f"q{i}", t, stopped) for i, t in enumerate(texts)
    ]
    if answers is not None:
        replies.append(
            Reply(
                "system-prompt-on",
                "profile",
                0,
                "何歳？",
                texts[0] if texts else "",
                stopped,
                answers=answers,
            )
        )
    return EvalRun("system-prompt-on", replies, reference, shared=_SHARED)
