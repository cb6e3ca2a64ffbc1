"""``python -m serifu`` = the ``serifu`` command."""

from serifu.cli import main

main()
