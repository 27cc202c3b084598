"""Offline OpenAI-compatible stand-in: Whisper tiny.en STT, an FAQ demo brain, espeak-ng TTS.

It serves the part of the OpenAI API that livekit-plugins-openai calls, so the agent runs
unchanged with no network and no API key. The chat endpoint is a deterministic FAQ matcher,
not a language model.
"""

from __future__ import annotations
