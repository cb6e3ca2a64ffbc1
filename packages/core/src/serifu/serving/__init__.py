"""``serifu serve``: tuned heroines behind an OpenAI-compatible HTTP API (docs/serving.md).

FastAPI and uvicorn are imported only when the server is built (``serifu[serve]``).
"""
