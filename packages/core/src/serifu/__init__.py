"""Serifu: turn a game character's script lines into a role-play chatbot.

Importing this package is cheap: torch, transformers and textual are imported only
inside the functions that need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("serifu")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
