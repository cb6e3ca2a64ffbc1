"""The ``aozora-play`` reader: Aozora Bunko stage plays (戯曲) to spoken lines.

Handles the header (up to the second ``-----`` rule) and footer (from ``底本：``), ruby,
editor notes and gaiji (:mod:`serifu.data.aozora_markup`), and two label styles:

- ``space``: ``名前　台詞`` with one or more full-width spaces (fixed-width padding too).
  Unlabelled lines continue the current speech when they sit at the top level or in an
  indentation block shallower than the play's direction blocks (the deepest indent used
  after the first speech); deeper blocks are stage directions.
- ``quote``: ``名前「台詞」`` where a quote may run over several lines, a label may stand
  on its own line (``バナナン大将`` then ``「…」``), and text after ``」`` is a direction.

Speech is what remains after ``（…）`` directions are removed. ``〜の声`` labels map to
the speaker, ``aliases`` map labels to names, joint labels (``母と兄``) stay as given.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serifu.data.aozora_markup import GaijiMode, strip_markup
from serifu.data.options import parse_options
from serifu.kinds import Utterance

_RULE = re.compile(r"^-{10,}\s*$")
_BLOCK = re.compile(r"^［＃(ここから[^］]*|ここで字下げ終わり|ここで[^］]*終わり)］\s*$")
_ONE_LINE_INDENT = re.compile(r"^［＃([0-9０-９]+)字下げ］")
_HEADING = re.compile(r"見出し］|^［＃改(ページ|丁|段)］")
_ACT_SCENE = re.compile(r"^[\s　]*(第[一二三四五六七八九十百〇0-9０-９]+[幕場景齣]|序幕|序詞|大詰)")
_DIRECTION = re.compile(r"（[^（）]*）")
_LABEL_CHARS = r"[^\s　（）「」『』。！？!?…―─〔〕【】［］《》｜]"
STOP_LABELS = frozenset({"時", "所", "場所", "人物", "登場人物", "情景", "場", "幕", "景"})
_FW_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


class AozoraPlayOptions(BaseModel):
    """Options of the ``aozora-play`` reader."""

    model_config = ConfigDict(extra="forbid")
    label_style: Literal["auto", "space", "quote"] = Field(
        default="auto", description="Speaker-label style; auto picks the commoner one."
    )
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Label -> speaker name (e.g. かつら = 桂)."
    )
    voice_suffix: str = Field(
        default="の声", description="Labels ending with this map to the speaker ('' keeps them)."
    )
    gaiji: GaijiMode = Field(
        default="resolve",
        description="Gaiji ※［＃…］: resolve to the character, drop, or placeholder.",
    )
    gaiji_placeholder: str = Field(default="〓", description="Stands for an unresolved gaiji.")
    odoriji: bool = Field(default=True, description="Write ／＼ and ／″＼ as 〱 and 〲.")
    max_label_chars: int = Field(default=10, ge=1, description="Longest accepted speaker label.")


@dataclass
class _Speech:
    label: str
    parts: list[str]
    scene: int
    line: int


@dataclass
class _State:
    speeches: list[_Speech] = field(default_factory=list)
    scene: int = 0
    level: int = 0
    current: _Speech | None = None


def _body_range(lines: list[str]) -> tuple[int, int]:
    """Index of the first body line (after the notation legend) and of the footer."""
    rules = [i for i, ln in enumerate(lines[:80]) if _RULE.match(ln)]
    start = rules[1] + 1 if len(rules) >= 2 else 0
    end = len(lines)
    for i in range(start, len(lines)):
        if lines[i].startswith("底本："):
            end = i
            break
    return start, end


def _block_level(note: str) -> int:
    """Indentation of a ``［＃ここから…］`` block; 0 for top-level (天付き, block end)."""
    if "天付き" in note or "終わり" in note:
        return 0
    m = re.search(r"([0-9０-９]+)字下げ", note)
    return int(m.group(1).translate(_FW_DIGITS)) if m else 0


def _is_direction_only(text: str) -> bool:
    return not remove_directions(text).strip()


def remove_directions(text: str) -> str:
    """Remove ``（…）`` stage directions (nested ones too)."""
    prev = None
    while prev != text:
        prev = text
        text = _DIRECTION.sub("", text)
    return text


class AozoraPlayReader:
    """Data source ``aozora-play``."""

    id = "aozora-play"
    description = "Aozora Bunko stage plays (名前　台詞 or 名前「台詞」), ruby and notes removed"
    has_speakers = True
    options_model = AozoraPlayOptions

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        opts = parse_options(AozoraPlayOptions, options, self.id)
        lines = text.split("\n")
        start, end = _body_range(lines)
        body = [(i + 1, ln) for i, ln in enumerate(lines[start:end], start=start)]
        style: str = opts.label_style
        if style == "auto":
            style = _detect_style(body, opts)
        speeches = (
            _parse_quote_style(body, opts) if style == "quote" else _parse_space_style(body, opts)
        )
        return _to_utterances(speeches, opts, path)


def _clean(line: str, opts: AozoraPlayOptions) -> str:
    return strip_markup(
        line, gaiji=opts.gaiji, gaiji_placeholder=opts.gaiji_placeholder, odoriji=opts.odoriji
    )


def _detect_style(body: list[tuple[int, str]], opts: AozoraPlayOptions) -> str:
    space = re.compile(rf"^{_LABEL_CHARS}{{1,{opts.max_label_chars}}}　")
    quote = re.compile(rf"^{_LABEL_CHARS}{{1,{opts.max_label_chars}}}(（[^）]*）)*「")
    n_space = n_quote = 0
    for _, raw in body:
        line = _clean(raw, opts)
        n_space += bool(space.match(line))
        n_quote += bool(quote.match(line))
    return "quote" if n_quote > n_space else "space"


def _structural(raw: str, st: _State) -> bool:
    """Handle block notes and scene boundaries; True when the line holds no speech."""
    if m := _BLOCK.match(raw):
        st.level = _block_level(m.group(1))
        return True
    if _HEADING.search(raw) or _ACT_SCENE.match(raw):
        st.scene += 1
        st.current = None
        return True
    return raw.startswith("［＃地から") or not raw.strip()


def _parse_space_style(body: list[tuple[int, str]], opts: AozoraPlayOptions) -> list[_Speech]:
    label_re = re.compile(
        rf"^(?P<label>{_LABEL_CHARS}{{1,{opts.max_label_chars}}}?)　+(?P<rest>\S.*)$"
    )
    st = _State()
    direction_level = 0
    seen_speech = False
    # The direction indent: the deepest block level used after the first labelled speech.
    for _, raw in body:
        if m := _BLOCK.match(raw):
            lvl = _block_level(m.group(1))
            if seen_speech:
                direction_level = max(direction_level, lvl)
            st.level = lvl
        elif st.level == 0 and label_re.match(_clean(raw, opts)):
            seen_speech = True
    st = _State()
    for lineno, raw in body:
        if _structural(raw, st):
            continue
        one_line = _ONE_LINE_INDENT.match(raw)
        line = _clean(raw, opts)
        if not line.strip():
            continue
        m = label_re.match(line) if (st.level == 0 and not one_line) else None
        if m and m.group("label") not in STOP_LABELS:
            st.current = _Speech(m.group("label"), [m.group("rest")], st.scene, lineno)
            st.speeches.append(st.current)
            continue
        if _is_direction_only(line):
            continue
        continues = not one_line and (st.level == 0 or st.level < direction_level)
        if continues and st.current is not None:
            st.current.parts.append(line.strip("　 "))
        # otherwise: narration or a direction block, not speech
    return st.speeches


def _quoted_segments(text: str) -> tuple[list[str], bool]:
    """The text inside top-level 「…」 in ``text`` (from its first 「), and whether one stays open."""
    segments: list[str] = []
    depth = 0
    buf: list[str] = []
    for ch in text:
        if ch == "「":
            if depth > 0:
                buf.append(ch)
            depth += 1
        elif ch == "」" and depth > 0:
            depth -= 1
            if depth == 0:
                segments.append("".join(buf))
                buf = []
            else:
                buf.append(ch)
        elif depth > 0:
            buf.append(ch)
    if depth > 0:
        segments.append("".join(buf))
    return segments, depth > 0


def _parse_quote_style(body: list[tuple[int, str]], opts: AozoraPlayOptions) -> list[_Speech]:
    n = opts.max_label_chars
    inline = re.compile(rf"^(?P<label>{_LABEL_CHARS}{{1,{n}}}?)(?:（[^）]*）)*(?P<quote>「.*)$")
    alone = re.compile(rf"^(?P<label>{_LABEL_CHARS}{{1,{n}}}?)(?:（[^）]*）)*$")
    unlabelled = re.compile(r"^(?:（[^）]*）)*(?P<quote>「.*)$")
    known: Counter[str] = Counter(
        m.group("label") for _, raw in body if (m := inline.match(_clean(raw, opts)))
    )

    def is_speaker(label: str) -> bool:
        if label in known:
            return True
        # joint labels made of known ones (曹長特務曹長), or a group ending with one (立てるもの合唱)
        return any(label.endswith(k) and (label[: -len(k)] in known or len(k) >= 2) for k in known)

    st = _State()
    pending: str | None = None
    open_quote = False
    after_speech = False  # the last content line belonged to a speech
    for lineno, raw in body:
        if open_quote and st.current is not None and not _BLOCK.match(raw):
            line = _clean(raw, opts)
            segments, still_open = _quoted_segments("「" + line)
            if segments:
                st.current.parts.append(segments[0])
                st.current.parts.extend(segments[1:])
            open_quote = still_open
            after_speech = True
            continue
        if _structural(raw, st):
            if st.current is None:
                pending, after_speech = None, False
            continue
        line = _clean(raw, opts).strip("　 ")
        if not line:
            continue
        if (m := inline.match(line)) and m.group("label") not in STOP_LABELS:
            speaker: str | None = m.group("label")
            quote = m.group("quote")
        elif (m := alone.match(line)) and is_speaker(m.group("label")):
            pending, after_speech = m.group("label"), True
            continue
        elif m := unlabelled.match(line):
            quote = m.group("quote")
            speaker = pending
            if speaker is None and after_speech and st.current is not None:
                segments, open_quote = _quoted_segments(quote)
                st.current.parts.extend(segments)
                continue
        else:
            if not _is_direction_only(line):
                after_speech = False
                pending = None
            continue
        pending = None
        if speaker is None:  # a quote nobody is named for: not attributable
            after_speech = False
            _, open_quote = _quoted_segments(quote)
            st.current = None
            continue
        segments, open_quote = _quoted_segments(quote)
        st.current = _Speech(speaker, segments, st.scene, lineno)
        st.speeches.append(st.current)
        after_speech = True
    return st.speeches


def _speaker_name(label: str, opts: AozoraPlayOptions) -> str:
    if label in opts.aliases:
        return opts.aliases[label]
    suffix = opts.voice_suffix
    if suffix and label.endswith(suffix) and len(label) > len(suffix):
        label = label[: -len(suffix)]
    return opts.aliases.get(label, label)


_DOUBLED_PUNCT = re.compile(r"([。、])\1+")


def _to_utterances(speeches: list[_Speech], opts: AozoraPlayOptions, path: Path) -> list[Utterance]:
    """Final speech text (directions removed) with scenes renumbered 1, 2, … in order."""
    out = []
    scenes: dict[int, int] = {}
    for sp in speeches:
        text = remove_directions("".join(sp.parts)).strip("　 \t")
        text = _DOUBLED_PUNCT.sub(r"\1", text)
        if not text:
            continue
        scene = scenes.setdefault(sp.scene, len(scenes) + 1)
        out.append(Utterance(_speaker_name(sp.label, opts), text, scene, sp.line, str(path)))
    return out
