"""Character data: readers (data sources), encodings, cleaning, dialogue pairs, datasets, stats.

Modules: ``encoding`` (detection), ``io`` (``read_utterances``), the readers
``lines_reader``, ``table_reader``, ``aozora_play``, ``script_reader``; ``cleaning``
(the report's preset), ``dialogue`` (``DialoguePair``), ``splits``, ``build``
(``build_dataset``), ``characters`` (a pack's lines), ``stats``. Importing this package
is cheap: ``datasets`` and ``fugashi`` are imported inside the functions that use them.
"""
