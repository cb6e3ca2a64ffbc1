"""Streamed events already waiting are merged per row: fewer SSE chunks, same text."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")


def test_waiting_pieces_merge_per_row_and_text_comes_before_done() -> None:
    from serifu.serving.app import _rows
    from serifu.serving.engine import Event, Job

    async def run() -> list[tuple[str, int, str]]:
        job = Job(None, [[1], [2]], 8, {}, [], None, True, asyncio.get_running_loop())  # type: ignore[arg-type]
        for event in [
            Event("delta", 0, "おは"),
            Event("delta", 1, "や"),
            Event("delta", 0, "よう"),
            Event("done", 0, finish_reason="stop"),
            Event("delta", 1, "あ"),
        ]:
            job.events.put_nowait(event)
        got = []
        rows = _rows(job)
        async for event in rows:
            got.append((event.kind, event.row, event.text))
            if len(got) == 3:
                job.events.put_nowait(Event("done", 1, finish_reason="length"))
        assert not job.cancelled.is_set()  # every row finished: nothing cancelled
        return got

    assert asyncio.run(run()) == [
        ("delta", 0, "おはよう"),
        ("delta", 1, "やあ"),
        ("done", 0, ""),
        ("done", 1, ""),
    ]
