from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from livekit.agents import JobExecutorType
from livekit.plugins import silero

from agent.pipeline import build_session, stt_vocabulary_hint
from agent.settings import Settings, load_settings
from agent.worker import _at_most_jobs, audio_input_options, build_server, gave_up_connecting
from common.languages import get_language
from common.metadata import Faq

pytestmark = pytest.mark.unit


@dataclass
class FakeRequest:
    id: str = "AJ_1"
    answers: list[str] = field(default_factory=list)

    async def accept(self) -> None:
        self.answers.append("accept")

    async def reject(self, *, terminate: bool = True) -> None:
        self.answers.append(f"reject terminate={terminate}")


@dataclass
class FakeServer:
    active_jobs: list[object]


@pytest.mark.parametrize(
    ("running", "answer"), [(0, "accept"), (1, "accept"), (2, "reject terminate=False")]
)
async def test_max_jobs_guard_accepts_below_the_cap_only(running: int, answer: str) -> None:
    request = FakeRequest()
    guard = _at_most_jobs(FakeServer([object()] * running), 2)  # type: ignore[arg-type]
    await guard(request)  # type: ignore[arg-type]
    assert request.answers == [answer]


def test_stt_hint_lists_the_questions_one_per_line() -> None:
    faqs = [
        Faq(question="What  are your\nhours?", answer="9-5"),
        Faq(question="Refunds?", answer="Yes"),
    ]
    assert stt_vocabulary_hint(faqs) == "What are your hours?\nRefunds?"


def test_stt_hint_is_bounded() -> None:
    faqs = [Faq(question="q" * 300, answer="a") for _ in range(50)]
    assert 0 < len(stt_vocabulary_hint(faqs)) <= 2000
    assert stt_vocabulary_hint([]) == ""


@pytest.mark.parametrize(("seconds", "expected"), [(0.0, None), (3.0, 3.0)])
async def test_session_listens_from_the_first_word_unless_aec_warmup_is_set(
    seconds: float, expected: float | None
) -> None:
    """AGENT_AEC_WARMUP_SECONDS reaches the session; 0 (the default) turns the guard off."""
    settings = load_settings(_env_file=None, agent_aec_warmup_seconds=seconds)
    session, _ = await build_session(settings, get_language("en"), (), silero.VAD.load())
    assert session.options.aec_warmup_duration == expected


def test_aec_warmup_is_off_by_default() -> None:
    assert Settings.model_fields["agent_aec_warmup_seconds"].default == 0.0


def test_worker_retries_reaching_livekit_forever_unless_a_limit_is_set() -> None:
    forever = build_server(load_settings(_env_file=None, openai_base_url="http://x/v1"))
    limited = build_server(
        load_settings(_env_file=None, openai_base_url="http://x/v1", agent_connect_max_retries=5)
    )
    assert forever._max_retry >= 10**9  # the framework's own default would be 16
    assert limited._max_retry == 5


def test_giving_up_on_livekit_is_read_from_the_framework_flag() -> None:
    """`gave_up_connecting` reads the framework's private flag: this fails if an upgrade
    renames it (the exit status after giving up would then be wrong)."""
    server = build_server(load_settings(_env_file=None, openai_base_url="http://x/v1"))
    assert gave_up_connecting(server) is False
    server._connection_failed = True
    assert gave_up_connecting(server) is True


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_worker_runs_jobs_with_the_chosen_executor(executor: str) -> None:
    settings = load_settings(_env_file=None, agent_job_executor=executor)
    server = build_server(settings)
    assert server._job_executor_type is JobExecutorType(executor)


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_every_log_level_we_accept_starts_the_framework_server(level: str) -> None:
    settings = load_settings(_env_file=None, log_level=level)
    build_server(settings)  # the framework validates its log level here


@pytest.mark.parametrize("agc", [True, False])
def test_user_audio_gain_control_follows_the_setting(agc: bool) -> None:
    settings = load_settings(_env_file=None, agent_input_agc=agc)
    assert audio_input_options(settings).auto_gain_control is agc
