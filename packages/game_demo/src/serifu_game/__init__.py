"""Serifu's terminal dating-sim (Textual)."""
