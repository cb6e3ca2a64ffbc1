"""The player's input box: an ``Input`` with a length limit that says so when it is hit."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input


class SayInput(Input):
    """``Input`` with ``max_length``; typing or pasting past it posts :class:`TooLong`."""

    class TooLong(Message):
        """The player tried to type past the limit."""

        def __init__(self, limit: int) -> None:
            super().__init__()
            self.limit = limit

    def restricted(self) -> None:
        self.app.bell()
        if self.max_length:
            self.post_message(self.TooLong(self.max_length))
