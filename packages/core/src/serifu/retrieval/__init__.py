"""Her own lines in the prompt (ChatHaruhi's method): BM25 over her real exchanges."""

from serifu.retrieval.examples import ExampleRetriever, bigrams

__all__ = ["ExampleRetriever", "bigrams"]
