"""Base-model plugins for Serifu."""
