"""Builds the FastAPI app: services created once in the lifespan, one router per endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .brain import Brain, Rule
from .e5_engine import EngineMissingError, engine_path
from .embeddings import Embedder
from .errors import install_error_handlers
from .faults import FaultInjector
from .realtime import RealtimeSessions
from .recognition import PocketsphinxFactory, RecogniserFactory
from .routes import admin, chat, models, realtime, speech, transcriptions
from .settings import Settings, get_settings
from .stt import Recognizer, Transcriber
from .timing import TimingMiddleware
from .tts import Synthesizer
from .whisper import WhisperFactory, WhisperRecognizer

__all__ = ["build_brain", "create_app"]

logger = logging.getLogger(__name__)


def build_brain(settings: Settings) -> Brain:
    rule = Rule(
        settings.brain_min_similarity,
        settings.brain_min_margin,
        settings.match_threshold,
        settings.brain_near_edit,
        settings.brain_min_question_similarity,
        settings.brain_min_question_margin,
    )
    try:
        embedder: Embedder | None = Embedder(engine_path(), settings.brain_threads)
    except EngineMissingError as exc:
        logger.warning("demo brain without embeddings (exact FAQ wording only): %s", exc)
        embedder = None
    return Brain(embedder, rule)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recognizer: Transcriber
        if isinstance(factory, WhisperFactory):
            recognizer = WhisperRecognizer(factory)
        else:
            recognizer = Recognizer(settings.stt_concurrency)
        await recognizer.load()
        app.state.recognizer = recognizer
        app.state.synthesizer = Synthesizer(settings.tts_concurrency, settings.tts_cache_entries)
        app.state.brain = await asyncio.to_thread(build_brain, settings)  # maps a 70 MB model
        logger.info(
            "stand-in ready (recogniser %s, faults %s)",
            settings.recogniser,
            "on" if settings.enable_faults else "off",
        )
        yield

    app = FastAPI(title="standin", summary="Offline OpenAI-compatible stand-in", lifespan=lifespan)
    app.state.settings = settings
    app.state.faults = FaultInjector()
    factory: RecogniserFactory
    if settings.recogniser == "whisper":
        factory = WhisperFactory(settings.stt_concurrency, settings.whisper_bias)
    else:
        factory = PocketsphinxFactory(settings.stt_concurrency)
    app.state.recogniser_factory = factory
    app.state.realtime_sessions = RealtimeSessions()
    install_error_handlers(app)
    for module in (chat, transcriptions, realtime, speech, models, admin):
        app.include_router(module.router)
    app.add_middleware(TimingMiddleware)
    return app
