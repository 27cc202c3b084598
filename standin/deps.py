"""`Annotated` dependencies: the app-owned services, read from `app.state`."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from .brain import Brain
from .faults import FaultInjector
from .settings import Settings
from .stt import Transcriber
from .tts import Synthesizer

__all__ = ["BrainDep", "FaultsDep", "RecognizerDep", "SettingsDep", "SynthesizerDep"]


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _faults(request: Request) -> FaultInjector:
    return cast(FaultInjector, request.app.state.faults)


def _brain(request: Request) -> Brain:
    return cast(Brain, request.app.state.brain)


def _recognizer(request: Request) -> Transcriber:
    return cast(Transcriber, request.app.state.recognizer)


def _synthesizer(request: Request) -> Synthesizer:
    return cast(Synthesizer, request.app.state.synthesizer)


BrainDep = Annotated[Brain, Depends(_brain)]
SettingsDep = Annotated[Settings, Depends(_settings)]
FaultsDep = Annotated[FaultInjector, Depends(_faults)]
RecognizerDep = Annotated[Transcriber, Depends(_recognizer)]
SynthesizerDep = Annotated[Synthesizer, Depends(_synthesizer)]
