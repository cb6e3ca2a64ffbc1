"""The heroine's portrait: pixel art drawn with half blocks, coloured per heroine and mood."""

from __future__ import annotations

import hashlib

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

# 24 x 24 pixels, two pixel rows per text row. H hair, S skin, E eye, W eye light,
# B blush, M mouth, C uniform, R ribbon, '.' background.
_FACE = """\
........HHHHHHHH........
......HHHHHHHHHHHH......
.....HHHHHHHHHHHHHH.....
....HHHHHHHHHHHHHHHH....
....HHHHHHHHHHHHHHHH....
...HHHHHHHHHHHHHHHHHH...
...HHHSHHHHHHHHHHSHHH...
...HHSSSSHHHHHHSSSSHH...
...HHSSSSSSSSSSSSSSHH...
...HHSSEESSSSSSEESSHH...
...HHSSEWSSSSSSEWSSHH...
...HHSSSSSSSSSSSSSSHH...
...HHSBBSSSSSSSSBBSHH...
...HHSSSSSSMMSSSSSSHH...
...HHHSSSSSSSSSSSSHHH...
...HHHHSSSSSSSSSSHHHH...
..HHHHH.SSSSSSSS.HHHHH..
..HHHHH...SSSS...HHHHH..
..HHHH..CCCRRCCC..HHHH..
..HHH.CCCCCRRCCCCC.HHH..
..HH.CCCCCCCCCCCCCC.HH..
...HCCCCCCCCCCCCCCCCH...
...CCCCCCCCCCCCCCCCCC...
..CCCCCCCCCCCCCCCCCCCC.."""

_SHORT_HAIR_ROWS = {
    15: "...HHHHSSSSSSSSSSHHHH...",
    16: "......H.SSSSSSSS.H......",
    17: ".........SSSSSS.........",
    18: "........CCCRRCCC........",
    19: "......CCCCCRRCCCCC......",
    20: ".....CCCCCCCCCCCCCC.....",
    21: "....CCCCCCCCCCCCCCCC....",
}
_TWIN_TAIL_ROWS = {
    5: ".HHHHHHHHHHHHHHHHHHHHHH.",
    6: "HHHHHSHHHHHHHHHHHHSHHHHH",
    7: "HH.HSSSSHHHHHHSSSSH.HHHH",
}

# Per heroine: (hair, eyes, ribbon, style). Others get colours from a hash of their id.
_LOOKS: dict[str, tuple[str, str, str, str]] = {
    "akane": ("#e8603c", "#8a3b12", "#ffd166", "short"),
    "himari": ("#f4c542", "#d9822b", "#ff6f59", "twin"),
    "hina": ("#f7a8c4", "#c2185b", "#ffffff", "twin"),
    "kaede": ("#c0392b", "#7b241c", "#2e86de", "short"),
    "rei": ("#a9c6e8", "#2e5e8e", "#34495e", "long"),
    "sayaka": ("#3b2a4d", "#6c3483", "#d4af37", "long"),
    "shiori": ("#2d3a4a", "#4b6584", "#a3cb38", "long"),
    "yuzuha": ("#c8a27a", "#6d8b3a", "#ff9ff3", "long"),
}
SKIN, LIGHT, BLUSH, MOUTH, UNIFORM, BACK = "#ffe0cc", "#ffffff", "#ff9aa2", "#c0504d", "#2c3e6b", ""


def looks(character: str) -> tuple[str, str, str, str]:
    """Hair, eye and ribbon colours and hair style for a heroine."""
    if character in _LOOKS:
        return _LOOKS[character]
    h = hashlib.sha256(character.encode()).digest()
    hair = f"#{h[0]:02x}{h[1]:02x}{h[2]:02x}"
    return hair, f"#{h[3] // 2:02x}{h[4] // 2:02x}{h[5] // 2:02x}", "#ff6f91", "long"


def pixel_rows(style: str, mood: str) -> list[str]:
    """The pixel map for a hair style and mood (mouth and blush change with mood)."""
    rows = _FACE.splitlines()
    for overlay in (
        _SHORT_HAIR_ROWS if style == "short" else {},
        _TWIN_TAIL_ROWS if style == "twin" else {},
    ):
        for i, row in overlay.items():
            rows[i] = row
    if mood in ("ご機嫌", "ときめき"):
        rows[13] = "...HHSSSSSMMMMSSSSSHH..."
        rows[14] = "...HHHSSSSSMMSSSSSHHH..."
    elif mood in ("よそよそしい", "不機嫌"):
        rows[13] = "...HHSSSSSSSSSSSSSSHH..."
        rows[14] = "...HHHSSSSMMMMSSSSHHH..."
    if mood != "ときめき":
        rows[12] = rows[12].replace("B", "S")
    if mood == "不機嫌":
        rows[8] = "...HHSEESSSSSSSSEESHH..."
    return rows


def render_portrait(character: str, mood: str = "ふつう") -> Text:
    """Rich text of the portrait: 24 columns by 12 rows of half blocks."""
    hair, eyes, ribbon, style = looks(character)
    palette = {
        "H": hair,
        "S": SKIN,
        "E": eyes,
        "W": LIGHT,
        "B": BLUSH,
        "M": MOUTH,
        "C": UNIFORM,
        "R": ribbon,
        ".": BACK,
    }
    rows = pixel_rows(style, mood)
    text = Text(no_wrap=True, overflow="crop")
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        for a, b in zip(top, bottom, strict=True):
            fg, bg = palette[a], palette[b]
            if not fg and not bg:
                text.append(" ")
            elif not fg:
                text.append("▄", Style(color=bg))
            else:
                text.append("▀", Style(color=fg, bgcolor=bg or None))
        text.append("\n")
    text.rstrip()
    return text


class Portrait(Static):
    """Shows :func:`render_portrait`; set ``mood`` to change her expression."""

    mood: reactive[str] = reactive("ふつう")

    def __init__(self, character: str, *, mood: str = "ふつう", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.character = character
        self.set_reactive(Portrait.mood, mood)

    def on_mount(self) -> None:
        self.update(render_portrait(self.character, self.mood))

    def watch_mood(self, mood: str) -> None:
        self.update(render_portrait(self.character, mood))

    def show(self, character: str, mood: str = "ふつう") -> None:
        self.character = character
        self.mood = mood
        self.update(render_portrait(character, mood))
