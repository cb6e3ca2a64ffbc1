"""Character Card V2/V3 files (docs/cards.md): read and write ``.png``, ``.json``, ``.charx``.

``serifu characters import`` turns one into a character pack folder; ``export`` writes one
that SillyTavern, RisuAI and other front ends import.
"""

from serifu.cards.files import read_card_file, write_card_file
from serifu.cards.packs import characters_dir, export_card, import_card

__all__ = ["characters_dir", "export_card", "import_card", "read_card_file", "write_card_file"]
