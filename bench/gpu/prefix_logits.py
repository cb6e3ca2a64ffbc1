"""Teacher-forced check of cached system prompts on a report model's architecture (random
bf16 weights, 8 random LoRA adapters, as ``serve_speed.py``): the prompt pass's last logits
and 16 teacher-forced steps with each heroine's system prompt copied from the prefix cache,
against the same batch with every prompt run whole. Also the noise floor: the whole batch
against itself with its rows in another order (other GEMM shapes/orders in bf16).

    python3 bench/gpu/prefix_logits.py [--models stablelm-beta-7b] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import TINY
from bench.gpu.serve_speed import CAST, TURNS, base_chatbot, write_adapters


def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
    a, b = a.float().nan_to_num(0, 0, 0), b.float().nan_to_num(0, 0, 0)
    top = a.topk(2, dim=-1).values
    decisive = (top[:, 0] - top[:, 1]) > 0.25
    mismatch = a.argmax(-1) != b.argmax(-1)
    return {
        "max_abs": round(float((a - b).abs().max()), 5),
        "argmax_mismatch": int(mismatch.sum()),
        "decisive_mismatch": int((mismatch & decisive).sum()),
        "positions": int(a.shape[0]),
    }


def check(model_id: str) -> dict[str, Any]:
    from serifu.accel.prefix import PrefixCache
    from serifu.inference.decoding import _static_decoder, left_pad
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import heroines_on
    from serifu.serving.mixed_lora import MixedLora

    bot = base_chatbot(model_id)
    with tempfile.TemporaryDirectory() as tmp:
        heroines = heroines_on(bot, write_adapters(bot, model_id, Path(tmp), 16), vocabulary="off")
    model = heroines[CAST[0]].bot.model
    mixed = MixedLora.for_model(model)
    assert mixed is not None
    mixed.install(model)
    engine = Engine(heroines)
    prompts = [heroines[c].encoder.encode_prompt(TURNS[1]) for c in CAST]
    specs = [engine._prefix_spec(heroines[c], p) for c, p in zip(CAST, prompts, strict=True)]
    names = [heroines[c].adapter_name for c in CAST]
    pad = int(bot.tokenizer.pad_token_id)

    def run(
        order: list[int], prefixed: bool, cache: PrefixCache, feed: torch.Tensor | None = None
    ) -> torch.Tensor:
        rows = [prompts[i] for i in order]
        mixed.set_rows([names[i] for i in order])
        ids, mask = left_pad(rows, pad, str(next(model.parameters()).device))
        dec = _static_decoder(model, len(rows), ids.shape[1] + 32)
        with torch.no_grad():
            if prefixed:
                first = dec.prefill_prefixed(ids, mask, rows, [specs[i] for i in order], cache)
            else:
                first = dec.prefill(ids, mask)
            out = [first.clone()]
            for k in range(16):  # teacher-forced: the whole run's greedy tokens (``feed``)
                tokens = (feed[:, k] if feed is not None else out[-1].argmax(-1).cpu())[order]
                out.append(dec.step(tokens.to(first.device)).clone())
        back = torch.empty(len(order), dtype=torch.long)
        back[torch.tensor(order)] = torch.arange(len(order))
        return torch.stack(out, 1)[back.to(out[0].device)]  # [rows in CAST order, steps, vocab]

    cache = PrefixCache()
    ident = list(range(len(CAST)))
    whole = run(ident, False, cache)
    feed = whole.argmax(-1).cpu()  # [rows, steps]: what every run is fed
    run(ident, True, cache, feed)  # fills the cache (a whole pass)
    cached = run(ident, True, cache, feed)
    reordered = run(ident[::-1], False, cache, feed)
    flat = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731
    return {
        "model": model_id,
        "rows": len(CAST),
        "steps": 17,
        "prefix_tokens": [s[1] if s else 0 for s in specs],
        "prompt_tokens": [len(p) for p in prompts],
        "cached_vs_whole": compare(flat(whole), flat(cached)),
        "first_logits_cached_vs_whole": compare(whole[:, 0], cached[:, 0]),
        "noise_floor_reordered_vs_whole": compare(flat(whole), flat(reordered)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="stablelm-beta-7b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    found = [check(TINY[m] if args.tiny else m) for m in args.models.split(",")]
    text = json.dumps(found, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
