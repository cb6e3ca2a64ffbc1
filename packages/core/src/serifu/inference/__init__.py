"""The chat/generation API used by ``serifu chat``, evaluation and the game."""

from serifu.inference.chatbot import Chatbot, Generation, load_chatbot

__all__ = ["Chatbot", "Generation", "load_chatbot"]
