"""Where an evaluation's real lines come from: the registered cast, or any multi-speaker script."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.evaluation.run import Reference
from serifu.evaluation.splits import LabeledLine
from serifu.kinds import Utterance

HELD_OUT = ("validation", "test")
"""The splits no adapter trains on (coherence scores their pairs)."""


def labeled(utterances: Sequence[Utterance], labels: dict[str, str]) -> list[LabeledLine]:
    """Lines of the speakers in ``labels`` (speaker -> label), the rest dropped."""
    return [
        LabeledLine(u.text, labels[u.speaker], u.source, u.scene, u.line)
        for u in utterances
        if u.speaker in labels and u.text.strip()
    ]


def heldout_pairs(
    utterances: Sequence[Utterance], speaker: str, splits: Sequence[str] = ("test",)
) -> list[tuple[str, str]]:
    """Her (query, reply) pairs in the ``splits`` of the dataset ``serifu data build`` makes by default.

    Same pairing, cleaning (preset ``report``) and seeded scene split as the data pipeline,
    so an adapter trained on that dataset never saw these replies.
    """
    from serifu.config.data import DataConfig
    from serifu.data.cleaning import Cleaner
    from serifu.data.dialogue import make_pairs
    from serifu.data.splits import split_by_scene as dataset_split

    config = DataConfig()
    pairs = make_pairs(
        utterances,
        speaker,
        context_lines=config.context_lines,
        cleaner=Cleaner.build(config.preset),
    ).pairs
    plan = dataset_split(
        [p.scene for p in pairs],
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    return [
        (p.query, p.reply)
        for p, split in zip(pairs, plan.assignment, strict=True)
        if split in splits and p.reply
    ]


def reference_cast() -> list[str]:
    """The classifier's fixed reference set: the built-in sample cast's ids.

    Fixed so that installing a plugin character never changes the cast's numbers; a
    character outside it is added as one more speaker when she is the one evaluated.
    """
    from serifu.builtin.sample_cast import cast_ids

    return cast_ids()


def cast_reference(character_id: str, *, seed: int = 0) -> Reference:
    """The reference cast's own lines (labels = character ids), plus ``character_id``'s; her pairs."""
    from serifu import plugins
    from serifu.data.characters import character_utterances

    plugins.get_character(character_id)  # a clear error for an unknown id
    members = sorted({*reference_cast(), character_id})
    lines: list[LabeledLine] = []
    target_utterances: list[Utterance] = []
    target_speaker = ""
    for pack_id in members:
        pack = plugins.get_character(pack_id)
        speaker = pack.card().short_name
        utterances = character_utterances(pack)
        lines += labeled(utterances, {speaker: pack_id})
        if pack_id == character_id:
            target_utterances, target_speaker = utterances, speaker
    extra = "" if character_id in reference_cast() else f" + {character_id}"
    ref = Reference(target=character_id, lines=lines, seed=seed, description=f"sample cast{extra}")
    ref.heldout_pairs = heldout_pairs(target_utterances, target_speaker)
    ref.selection_pairs = heldout_pairs(target_utterances, target_speaker, HELD_OUT)
    if not ref.target_lines():
        raise SerifuError(f"character {character_id!r} has no lines of her own in her scripts")
    return ref


def speaker_counts(utterances: Sequence[Utterance]) -> Counter[str]:
    return Counter(u.speaker for u in utterances if u.text.strip())


def script_reference(
    paths: Sequence[Path],
    source: str,
    *,
    speaker: str | None = None,
    min_lines: int = 30,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    encoding: str | None = None,
) -> Reference:
    """Speakers of a script with at least ``min_lines`` lines; ``speaker`` (optional) is the target."""
    from serifu.data.io import read_utterances

    utterances = read_utterances(list(paths), source, options=options, encoding=encoding)
    counts = speaker_counts(utterances)
    kept = sorted(name for name, n in counts.items() if n >= min_lines)
    where = ", ".join(str(p) for p in paths)
    if speaker is not None and speaker not in counts:
        top = ", ".join(f"{n} ({c})" for n, c in counts.most_common(8))
        raise SerifuError(f"speaker {speaker!r} does not occur in {where}; most frequent: {top}")
    if speaker is not None and speaker not in kept:
        kept.append(speaker)
    if len(kept) < 2:
        raise SerifuError(
            f"{where}: fewer than two speakers have at least {min_lines} lines "
            f"({dict(counts.most_common(5))}); lower --min-lines"
        )
    lines = labeled(utterances, {name: name for name in kept})
    ref = Reference(
        target=speaker or "", lines=lines, seed=seed, description=f"speakers of {where}"
    )
    if speaker is not None:
        ref.heldout_pairs = heldout_pairs(utterances, speaker)
        ref.selection_pairs = heldout_pairs(utterances, speaker, HELD_OUT)
        ref.train_pairs = heldout_pairs(utterances, speaker, ("train",))
    return ref


def dataset_pairs(data_dir: Path, splits: Sequence[str] = ("test",)) -> list[tuple[str, str]]:
    """(query, reply) pairs of a dialogue dataset's ``splits`` (by default ``test``, the one
    its adapter never saw; ``validation`` is never trained on either)."""
    from serifu.data.build import load_build_info

    meta = load_build_info(data_dir)
    if meta.get("format") != "dialogue":
        raise SerifuError(
            f"perplexity needs a dialogue dataset (query -> reply); this one is {meta.get('format')!r}",
            path=data_dir,
        )
    import datasets

    loaded = datasets.load_from_disk(str(data_dir))
    out: list[tuple[str, str]] = []
    for name in splits:
        if name in loaded:
            split = loaded[name]
            out += [
                (q, r) for q, r in zip(split["query"], split["reply"], strict=True) if r.strip()
            ]
    return out
