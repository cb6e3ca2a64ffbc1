"""Every string the game shows is plain text: never Rich/Textual markup.

Names, profiles and lines come from character cards, plugins, save files, the model and the
player; markup in them (``[@click=app.quit]``, ``[/x]``) would run actions or crash the
screen. So screens build what they show with :func:`plain` (Textual ``Content`` from literal
pieces, each with an optional style of ours), widgets that take strings are created with
``markup=False``, and toasts use ``markup=False``. ``tests/game/test_plain_text.py`` checks
the sources for markup strings and for text widgets created without ``markup=False``.
"""

from __future__ import annotations

from textual.content import Content

Part = object | tuple[object, str]
"""A piece of text (any object, shown as ``str(obj)``), or ``(text, style)``."""


def plain(*parts: Part) -> Content:
    """Literal text from ``parts``; a ``(text, style)`` pair styles just that piece.

    ``plain("♥ ", (name, "bold #ff7aa2"))`` shows ``name`` verbatim, whatever brackets it holds.
    Control codes (terminal escapes) are stripped.
    """
    pieces: list[str | tuple[str, str]] = []
    for part in parts:
        if isinstance(part, tuple):
            text, style = part
            pieces.append((str(text), style))
        else:
            pieces.append(str(part))
    return Content.assemble(*pieces)
