"""The game's widgets: portrait, affection meter, dialogue log, debug panel."""
