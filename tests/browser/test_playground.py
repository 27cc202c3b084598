"""The playground page in headless Chromium against the real local stack.

One browser session walks the frontend contract: it connects with the page's demo FAQs, asks a
FAQ question through a fake microphone (an espeak-ng WAV), types another (`send_text`), switches
the language (`set_language`), then checks the state RPCs, the avatar and the console. The tests
share that session and run in file order; each checks one behaviour of it.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright without any browser download, and
kept off the network by its flags. The page is `playground/dist`, built by `npm run build`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from livekit import api, rtc
from playwright.sync_api import ConsoleMessage, Error, Page, sync_playwright

from agent.prompts import language_prompts
from common.languages import get_language
from devstack.paths import REPO_ROOT
from devstack.stack import Stack
from token_server.tokens import build_grants

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


CHROMIUM = Path("/usr/bin/chromium")
PLAYGROUND = REPO_ROOT / "playground"
# Every run leaves its screenshot in test-artifacts/ (git-ignored); the README's picture in docs/
# is refreshed only on request, so a test run never dirties a tracked file.
SCREENSHOT = REPO_ROOT / "test-artifacts" / "playground.png"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "playground.png"
UPDATE_DOCS_SCREENSHOT = os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"

SPOKEN_QUESTION = "What are your opening hours?"
TYPED_QUESTION = "How long does shipping take?"
FIRST_LANGUAGE = "en"
SWITCH_TO = "es"
# Silence before the question: the microphone opens when the page connects, and the question
# should come after the agent's greeting (about 4 s) rather than barge into it.
LEAD_SILENCE_S = 6.0
TRAIL_SILENCE_S = 4.0
STEP_TIMEOUT_S = 30.0
# A hang guard: the agent normally joins within a second or two of the page.
AGENT_JOIN_TIMEOUT_S = 30.0

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    # No mDNS host candidates (and no multicast socket for them): every candidate is an address.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]

# Records every value the avatar's `data-state` takes, however briefly, from the page's start.
AVATAR_OBSERVER = """
window.__avatarStates = [];
document.addEventListener('DOMContentLoaded', () => {
  const avatar = document.querySelector('[data-role="avatar"]');
  if (!avatar) return;
  new MutationObserver(() => window.__avatarStates.push(avatar.dataset.state))
    .observe(avatar, { attributes: true, attributeFilter: ['data-state'] });
});
"""

# Records every state the user's transcript lines pass through (segment, final flag, text):
# the page replaces a segment's line in place, so only an observer sees the interims.
TRANSCRIPT_OBSERVER = """
window.__userLines = [];
document.addEventListener('DOMContentLoaded', () => {
  const seen = new Map();
  new MutationObserver(() => {
    for (const line of document.querySelectorAll(
      '[data-role="transcript-line"][data-speaker="user"]')) {
      const state = `${line.dataset.final}|${line.textContent}`;
      if (seen.get(line.dataset.segment) === state) continue;
      seen.set(line.dataset.segment, state);
      window.__userLines.push(
        {segment: line.dataset.segment, final: line.dataset.final, text: line.textContent});
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true,
                             attributes: true, attributeFilter: ['data-final']});
});
"""


def normalize(text: str) -> str:
    """Lowercase letters and digits separated by single spaces: punctuation-blind comparison."""
    text = unicodedata.normalize("NFC", text).casefold()
    return " ".join(re.findall(r"\w+", text))


@dataclass
class Session:
    """The browser session the tests share, and what the page said on its console."""

    page: Page
    stack: Stack
    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)

    def debug(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate("window.__playground")
        return result

    def transcripts(self, speaker: str, *, final: bool = True) -> list[str]:
        """The transcript text the page shows a person (its transcript lines), not its state."""
        selector = f'[data-role="transcript-line"][data-speaker="{speaker}"]'
        if final:
            selector += '[data-final="true"]'
        texts: list[str] = self.page.eval_on_selector_all(
            selector, "lines => lines.map(l => l.querySelector('.text')?.textContent ?? '')"
        )
        return texts

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT_S) -> Any:
        """Poll `check` until it returns something truthy; fail with what the page saw."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            self.page.wait_for_timeout(150)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.diagnostics()}")

    def wait_for_agent_line(self, what: str, matches: Callable[[str], bool]) -> str:
        def found() -> str | None:
            return next((t for t in self.transcripts("agent") if matches(t)), None)

        line: str = self.wait_for(what, found)
        return line

    def diagnostics(self) -> str:
        debug = self.debug()
        agent_log = self.stack.services["agent"].log_path
        tail = agent_log.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(
            [
                f"connection: {debug['connection']} room: {debug['room']}",
                f"states: {[(s['seq'], s['state']) for s in debug['states']]}",
                f"transcripts: {[(t['speaker'], t['text']) for t in debug['transcripts']]}",
                f"rpcs: {debug['rpcs']}",
                f"errors: {debug['errors'] + self.console_errors}",
                f"agent log ({agent_log}):",
                *tail,
            ]
        )


@pytest.fixture(scope="module")
def built_page() -> Path:
    """`playground/dist`, built by scripts/bootstrap.sh (`npm ci && npm run build`)."""
    index = PLAYGROUND / "dist" / "index.html"
    if not index.exists():
        pytest.fail("playground/dist is missing: run `npm ci && npm run build` in playground/")
    return index


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spoken question as Chromium's fake microphone wants it: 48 kHz mono 16-bit WAV."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to render the fake microphone input")
    folder = tmp_path_factory.mktemp("microphone")
    raw, wav = folder / "question-raw.wav", folder / "question.wav"
    speak = ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SPOKEN_QUESTION]
    subprocess.run(speak, check=True)
    pad = ["pad", str(LEAD_SILENCE_S), str(TRAIL_SILENCE_S)]
    subprocess.run(
        ["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav), *pad], check=True
    )
    return wav


@pytest.fixture(scope="module")
def session(stack: Stack, built_page: Path, microphone_wav: Path) -> Iterator[Session]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    # `%noloop`: play the question once, then silence (Chromium loops the file by default).
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone_wav}%noloop"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            result = Session(page=page, stack=stack)

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    result.console_errors.append(f"console: {message.text}")
                elif message.type == "warning":
                    result.console_warnings.append(message.text)

            def on_page_error(error: Error) -> None:
                result.console_errors.append(f"pageerror: {error}")

            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.add_init_script(AVATAR_OBSERVER)
            page.add_init_script(TRANSCRIPT_OBSERVER)
            page.goto(stack.playground_url)
            yield result
        finally:
            browser.close()


def connect_and_wait_for_the_agent(session: Session) -> None:
    """Click Connect; the token server's new room must get the agent dispatched."""
    page = session.page
    page.click('[data-action="connect"]')
    session.wait_for(
        "the page to connect",
        lambda: page.get_attribute('[data-role="connection-state"]', "data-state") == "connected",
    )
    deadline = time.monotonic() + AGENT_JOIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if session.debug()["agent"]:
            return
        page.wait_for_timeout(150)
    pytest.fail(f"no agent joined the room\n{session.diagnostics()}")


def test_playground_connects_and_the_agent_greets(session: Session) -> None:
    page = session.page
    assert page.locator('[data-role="language"]').input_value() == FIRST_LANGUAGE

    connect_and_wait_for_the_agent(session)

    greeting = normalize(language_prompts(get_language(FIRST_LANGUAGE).prompt).greeting)
    # A prefix is enough: if the user's question barges in, the greeting is cut short.
    line = session.wait_for_agent_line(
        "the agent's greeting",
        lambda t: len(normalize(t)) > 5 and greeting.startswith(normalize(t)),
    )
    assert line
    debug = session.debug()
    assert debug["identity"].startswith("user-")
    assert re.fullmatch(r"avatar-[0-9a-f]{8}", debug["room"])
    assert debug["agent"].startswith("agent")


def faq_answer(page: Page, question: str) -> str:
    """The answer the page's FAQ editor holds (and sent in the token metadata) for `question`."""
    faqs: list[dict[str, str]] = page.eval_on_selector_all(
        '[data-role="faq-row"]',
        """rows => rows.map(r => ({
            question: r.querySelector('[data-field="question"]').value,
            answer: r.querySelector('[data-field="answer"]').value,
        }))""",
    )
    return next(f["answer"] for f in faqs if normalize(f["question"]) == normalize(question))


def test_spoken_faq_question_is_transcribed_and_answered_from_the_faqs(session: Session) -> None:
    page = session.page
    answer = faq_answer(page, SPOKEN_QUESTION)

    heard = session.wait_for(
        "the user's transcript of the spoken question",
        lambda: next(
            (t for t in session.transcripts("user") if "opening hours" in normalize(t)), None
        ),
    )
    # The user's line shows what was heard: the question's words, give or take one misheard
    # word (Whisper tiny.en on espeak-ng once heard "what's up" for "what are").
    said, asked = normalize(heard).split(), normalize(SPOKEN_QUESTION).split()
    assert sum(word in said for word in asked) >= len(asked) - 1, heard
    session.wait_for_agent_line("the FAQ's answer", lambda t: normalize(answer) in normalize(t))

    lines = page.locator('[data-role="transcript-line"]')
    assert lines.filter(has_text=heard).first.get_attribute("data-speaker") == "user"
    assert lines.and_(page.locator('[data-speaker="agent"][data-final="true"]')).count() >= 2
    # Every segment is one line: interim results were replaced in place, not appended.
    segments = [t["segmentId"] for t in session.debug()["transcripts"]]
    assert lines.count() == len(set(segments))
    # Streaming recognition: the question's line showed interim text first, then its final.
    seen: list[dict[str, str]] = page.evaluate("window.__userLines")
    question_segment = next(
        t["segmentId"]
        for t in session.debug()["transcripts"]
        if t["speaker"] == "user" and "opening hours" in normalize(t["text"])
    )
    flags = [line["final"] for line in seen if line["segment"] == question_segment]
    assert "false" in flags, seen
    assert flags[-1] == "true", seen
    assert flags.index("false") < flags.index("true"), seen


def test_send_text_gets_a_spoken_transcribed_answer(session: Session) -> None:
    page = session.page
    answer = faq_answer(page, TYPED_QUESTION)
    sent_at_seq = max(s["seq"] for s in session.debug()["states"])

    page.fill('[data-role="text-input"]', TYPED_QUESTION)
    page.click('[data-action="send"]')

    session.wait_for_agent_line(
        "the answer to the typed question", lambda t: normalize(answer) in normalize(t)
    )
    rpc = next(r for r in session.debug()["rpcs"] if r["method"] == "send_text")
    assert rpc["payload"] == {"text": TYPED_QUESTION}
    assert rpc.get("response") == '{"ok":true}', rpc
    assert page.locator('[data-typed="true"]').first.inner_text().endswith(TYPED_QUESTION)
    # Spoken: the agent went through `speaking` for it, and its voice plays in an <audio> element.
    spoken = [s["state"] for s in session.debug()["states"] if s["seq"] > sent_at_seq]
    assert "speaking" in spoken
    playing = page.eval_on_selector_all(
        "#audio audio", "els => els.filter(e => !e.paused && e.currentTime > 0).length"
    )
    assert playing >= 1


def test_set_language_makes_the_agent_speak_the_new_language(session: Session) -> None:
    page = session.page
    switched = normalize(language_prompts(get_language(SWITCH_TO).prompt).language_switched)

    page.select_option('[data-role="language"]', SWITCH_TO)

    session.wait_for_agent_line(
        "the agent's line in the new language", lambda t: normalize(t) == switched
    )
    rpc = next(r for r in session.debug()["rpcs"] if r["method"] == "set_language")
    assert rpc["payload"] == {"language": SWITCH_TO}
    assert rpc.get("response") == '{"ok":true}', rpc


def test_state_rpcs_arrive_in_order_and_the_avatar_shows_each(session: Session) -> None:
    page = session.page
    session.wait_for(
        "the agent to finish speaking",
        lambda: session.debug()["states"][-1]["state"] == "listening",
    )
    states = session.debug()["states"]
    seqs = [s["seq"] for s in states]
    assert seqs == sorted(set(seqs)), f"state RPCs out of order or repeated: {seqs}"
    seen = {s["state"] for s in states}
    assert {"listening", "thinking", "speaking"} <= seen, seen

    avatar_states = set(page.evaluate("window.__avatarStates"))
    assert {"initializing", "listening", "thinking", "speaking"} <= avatar_states, avatar_states
    assert page.get_attribute('[data-role="avatar"]', "data-state") == states[-1]["state"]
    assert page.inner_text('[data-role="avatar-label"]').lower() == states[-1]["state"]


IMPOSTOR = "agent-impostor"
FAKE_SEQ = 999_999


async def _pose_as_the_agent(stack: Stack, room: str, user: str) -> int | None:
    """Join the page's room as `agent-...` (not of the agent kind), call `agent_state_changed`
    on the page and publish a transcript; return the RPC's error code (None: accepted).

    The room admits one user besides the agent; the impostor is of the egress kind, which
    livekit-server does not count (a token that only the API secret's holder can make): it
    stands for anyone who gets into the room some other way.
    """
    token = (
        api.AccessToken(stack.api_key, stack.api_secret)
        .with_identity(IMPOSTOR)
        .with_kind("egress")
        .with_grants(build_grants(room))
        .to_jwt()
    )
    impostor = rtc.Room()
    await impostor.connect(stack.livekit_url, token)
    try:
        fake = {"state": "speaking", "previous": "listening", "seq": FAKE_SEQ, "timestamp": 1.0}
        code: int | None = None
        # As a persistent attacker would: retry while the page does not know us yet (409).
        for _ in range(40):
            try:
                await impostor.local_participant.perform_rpc(
                    destination_identity=user,
                    method="agent_state_changed",
                    payload=json.dumps(fake),
                )
                code = 200
            except rtc.RpcError as exc:
                code = exc.code
            if code != 409:
                break
            await asyncio.sleep(0.25)
        await impostor.local_participant.send_text(
            "PWNED: visit evil.example",
            topic="lk.transcription",
            attributes={
                "lk.transcribed_track_id": "TR_fake",
                "lk.segment_id": "SG_fake",
                "lk.transcription_final": "true",
            },
        )
        return code
    finally:
        await impostor.disconnect()


def test_state_calls_and_transcripts_from_a_fake_agent_are_ignored(session: Session) -> None:
    debug = session.debug()
    real_agent = debug["agent"]
    # Playwright's sync API runs an event loop in this thread: the impostor gets its own thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        attack = _pose_as_the_agent(session.stack, debug["room"], debug["identity"])
        code = pool.submit(asyncio.run, attack).result(timeout=STEP_TIMEOUT_S)
    assert code == 403, "the page accepted agent_state_changed from a participant not the agent"
    session.wait_for(
        "the page to drop the fake transcript",
        lambda: any(IMPOSTOR in w and "transcript" in w for w in session.console_warnings),
    )
    debug = session.debug()
    assert all(s["seq"] != FAKE_SEQ for s in debug["states"])
    assert not any("PWNED" in t["text"] for t in debug["transcripts"])
    assert debug["agent"] == real_agent
    assert session.page.get_attribute('[data-role="avatar"]', "data-state") != "speaking"


def test_no_errors_in_the_console(session: Session) -> None:
    session.page.wait_for_timeout(500)  # let the avatar's colour transition settle
    for path in [SCREENSHOT, DOCS_SCREENSHOT] if UPDATE_DOCS_SCREENSHOT else [SCREENSHOT]:
        path.parent.mkdir(parents=True, exist_ok=True)
        session.page.screenshot(path=path, full_page=True)

    assert session.console_errors == []
    assert session.debug()["errors"] == []
