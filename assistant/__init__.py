"""Offline voice assistant: wake word, Whisper, a llama.cpp agent and Piper."""

__version__ = "0.1.0"
