"""Write ``cast_dialogue_shared.json``: each sample heroine's dialogue examples as the trainer
encodes them for Gemma 3 (template + her card's system prompt), as token counts: the prefix
all her examples share (:func:`serifu.training.shared_prefix.shared_length`) and each
example's (prompt, reply) tokens. ``bench.gpu.common.dialogue_workload`` lays random tokens
out in that shape: one heroine's examples, her shared prefix the same in all of them.

    python3 bench/data/cast_dialogue_shared.py   # needs the gemma-3-270m tokenizer (quickstart)
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("cast_dialogue_shared.json")


def main() -> None:
    from serifu import plugins
    from serifu.characters import system_prompt
    from serifu.data.characters import character_pairs
    from serifu.modeling import load_tokenizer, resolve_base
    from serifu.prompts.chat_template import template_for
    from serifu.training.examples import IGNORE, encode_rows
    from serifu.training.shared_prefix import shared_length

    base = resolve_base("gemma-3-270m")
    tokenizer = load_tokenizer(base)
    template = template_for(base, tokenizer)
    heroines = {}
    for cid in sorted(plugins.characters()):
        character = plugins.get_character(cid)
        rows = [p.to_row() for p in character_pairs(character)]
        examples = encode_rows(
            rows,
            fmt="dialogue",
            tokenizer=tokenizer,
            template=template,
            system=system_prompt(character.card()),
            add_special_tokens=base.add_special_tokens,
            max_length=1024,
        )
        pairs = []
        for ex in examples:
            prompt = next(i for i, y in enumerate(ex.labels) if y != IGNORE)
            pairs.append([prompt, len(ex) - prompt])
        heroines[cid] = {"shared": shared_length(examples), "pairs": pairs}
    record = {
        "source": "sample cast (serifu/cast) dialogue examples as the trainer encodes them for "
        "gemma-3-270m (template + the heroine's card as system prompt), max_length 1024: "
        "'shared' = tokens every example of hers starts with (ending before any learned "
        "token), 'pairs' = [prompt tokens, reply tokens] per example",
        "heroines": heroines,
    }
    OUT.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
