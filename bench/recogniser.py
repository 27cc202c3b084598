"""The stand-in's recognisers on a small spoken set: word error rate, FAQ words heard that were
never said, and real-time factor on this machine.

Engines: pocketsphinx (the FAQ questions as its language model, and without) and Whisper
tiny.en with each way of giving it the FAQ questions (none, `initial_prompt`, `hotwords`, and
`hotwords` with just the questions' words), plus the realtime path (partials, then the final).
Whisper's final is measured with the encoder window fitted to the utterance (the stand-in's
rule, and other floors with `--floors`) and with faster-whisper's full 30 s window (before).
The real-time factor is decode time over audio time, one utterance at a time on `--threads`.
Utterances: the sample FAQs' exact questions, paraphrases of them, questions no FAQ covers,
and two long requests (~11 s, over the window's floor, and ~36 s, over one Whisper window),
rendered by espeak-ng with voices other than the project's (`en-us`). The prompt is the FAQ
questions, one a line, as the agent sends them.

    make bench-recogniser      # -> bench/results/recogniser.json
    python -m bench.recogniser --only "whisper, " --floors 8,15   # the final's window only
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

from devstack.sample_faqs import HOURS, LOCATION, PASSWORD, PAYMENT, SHIPPING
from standin.settings import Settings as StandinSettings
from standin.stt import HintedDecoder
from standin.whisper import (
    FINAL_MIN_WINDOW_S,
    FINAL_WINDOW_STEP_S,
    Bias,
    WhisperEngine,
    WhisperStream,
)

from .harness import start_run

# The stand-in's own default, whatever the environment says.
DEFAULT_BIAS: Bias = StandinSettings.model_fields["whisper_bias"].default
logger = logging.getLogger("bench.recogniser")

RATE = 16000
SPEED_WPM = 160
FAQS = (HOURS, PASSWORD, LOCATION, PAYMENT, SHIPPING)
PROMPT = "\n".join(f.question for f in FAQS)
# A lighter hint than whole questions: each of their words once, in order.
FAQ_WORD_LIST = " ".join(dict.fromkeys(re.findall(r"[a-z]+", PROMPT.lower())))
# (group, text): exact FAQ questions, paraphrases of them, questions no FAQ answers.
UTTERANCES: tuple[tuple[str, str], ...] = (
    *(("exact", f.question) for f in FAQS),
    ("paraphrase", "When do you open in the morning?"),
    ("paraphrase", "What time do you close today?"),
    ("paraphrase", "I forgot my login, how can I get back into my account?"),
    ("paraphrase", "How do I change my password?"),
    ("paraphrase", "Can you tell me the address of the store?"),
    ("paraphrase", "Can I pay with a credit card?"),
    ("paraphrase", "Do you deliver to Canada?"),
    ("paraphrase", "Is cash okay or only cards?"),
    ("other", "Can I come in to see the dentist on a Saturday?"),
    ("other", "Do you sell gift vouchers for birthdays?"),
    ("other", "Is there parking near the building?"),
    ("other", "How long does a repair usually take?"),
    ("other", "Can I bring my dog inside?"),
    ("other", "What is the weather like tomorrow?"),
    ("other", "Do you have any jobs for students?"),
    # Longer than the final's window floor (about 13 s), and longer than one Whisper window
    # (about 38 s: faster-whisper's own decode walks two windows).
    (
        "long",
        "Hello, I ordered a pair of running shoes from your website last week and they"
        " still have not arrived, could you tell me where my parcel is and when it will get here?"
        " I paid with my credit card.",
    ),
    (
        "long",
        "Good afternoon, I am calling about the coffee machine I bought in your store"
        " about two months ago. It worked well at first, but since last Friday it makes a loud"
        " noise and the water comes out cold. I still have the receipt and the box. Can I bring"
        " it back for a repair or a new one, and do I need to book an appointment first, or can"
        " I just come in on a weekday morning before work? My sister has the same model and hers"
        " works fine, so I think mine is broken. I have tried to clean it with vinegar twice, and"
        " I read the manual, but nothing helped. Please let me know what I should do next.",
    ),
)
GROUPS = ("exact", "paraphrase", "other", "long")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# The prompt's words that say which FAQ a question is about; hearing one that was not said is
# what sends the demo brain to a wrong answer.
FAQ_WORDS = set(_WORD.findall(PROMPT.lower())) - {
    "what", "are", "your", "how", "do", "i", "my", "where", "is", "the", "which", "you",
}  # fmt: skip


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def render(text: str, voice: str) -> bytes:
    """espeak-ng speech as 16 kHz mono int16 PCM, the same on every run (sox dither off)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "--stdout", "--stdin"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return subprocess.run(
        ["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
         "-e", "signed", "-"],
        input=wav, capture_output=True, check=True,
    ).stdout  # fmt: skip


def streamed(engine: WhisperEngine, pcm: bytes, prompt: str | None, chunk_ms: int = 50) -> str:
    """The realtime path: partials while the audio arrives (as fast as it can), then the final."""
    stream = WhisperStream(engine)
    stream.set_prompt(prompt)
    step = RATE * 2 * chunk_ms // 1000
    for i in range(0, len(pcm), step):
        stream.accept(pcm[i : i + step])
    return stream.finish()


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--voices", default="en-us+f3,en-gb-x-rp,en-us+m7", help="espeak-ng voices, comma-separated"
    )
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads (cores)")
    parser.add_argument(
        "--floors",
        default="5",
        help="other floors (s) of the final's fitted window to measure, comma-separated",
    )
    parser.add_argument(
        "--only", default="", help="measure only the engines whose name contains this"
    )


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "voices": args.voices.split(","),
        "threads": args.threads,
        "final_window_floor_s": FINAL_MIN_WINDOW_S,
        "final_window_step_s": FINAL_WINDOW_STEP_S,
        "other_floors_s": [float(f) for f in args.floors.split(",") if f],
        "only": args.only,
        "speed_wpm": SPEED_WPM,
        "utterances": [{"group": g, "text": t} for g, t in UTTERANCES],
        "prompt": PROMPT,
        "faq_word_list": FAQ_WORD_LIST,
    }


def main(argv: list[str] | None = None) -> None:
    run = start_run("recogniser", __doc__ or "", options, parameters, argv)
    voices = run.args.voices.split(",")
    logger.info("loading Whisper tiny.en and pocketsphinx")
    engine = WhisperEngine(concurrency=1, threads=run.args.threads)
    sphinx = HintedDecoder()

    def whisper(
        bias: Bias, floor: float | None = FINAL_MIN_WINDOW_S
    ) -> Callable[[bytes, str | None], str]:
        def recognise(pcm: bytes, prompt: str | None) -> str:
            engine.bias, engine.final_window_floor_s = bias, floor
            return engine.transcribe(pcm, prompt) or ""

        return recognise

    def whisper_streamed(bias: Bias, floor: float | None) -> Callable[[bytes, str | None], str]:
        def recognise(pcm: bytes, prompt: str | None) -> str:
            engine.bias, engine.final_window_floor_s = bias, floor
            return streamed(engine, pcm, prompt)

        return recognise

    floors = [float(f) for f in run.args.floors.split(",") if f]

    # name -> (recognise, the prompt it gets)
    configs: dict[str, tuple[Callable[[bytes, str | None], str], str | None]] = {
        "pocketsphinx+prompt-lm": (sphinx.recognize, PROMPT),
        "pocketsphinx": (sphinx.recognize, None),
        "whisper, full 30 s window (before)": (whisper("none", None), None),
        f"whisper, fitted window (floor {FINAL_MIN_WINDOW_S} s)": (whisper("none"), None),
        **{
            f"whisper, fitted window (floor {f:g} s)": (whisper("none", f), None)
            for f in floors
            if f != FINAL_MIN_WINDOW_S
        },
        "whisper+initial_prompt": (whisper("prompt"), PROMPT),
        "whisper+hotwords": (whisper("hotwords"), PROMPT),
        "whisper+hotwords (FAQ word list)": (whisper("hotwords"), FAQ_WORD_LIST),
        "whisper streamed, full-window final (before)": (whisper_streamed("none", None), None),
        # As the stand-in serves the agent: its default bias, the agent's prompt.
        "whisper streamed (partials + final)": (
            whisper_streamed(DEFAULT_BIAS, FINAL_MIN_WINDOW_S),
            PROMPT,
        ),
    }
    configs = {name: c for name, c in configs.items() if run.args.only in name}
    rows: list[dict[str, Any]] = []
    for voice in voices:
        for group, text in UTTERANCES:
            pcm = render(text, voice)
            audio_s = len(pcm) / 2 / RATE
            for name, (recognise, prompt) in configs.items():
                started = time.perf_counter()
                heard = recognise(pcm, prompt)
                elapsed = time.perf_counter() - started
                ref, hyp = words(text), words(heard)
                rows.append({
                    "engine": name, "voice": voice, "group": group, "text": text,
                    "heard": heard, "errors": edit_distance(ref, hyp), "ref_words": len(ref),
                    "faq_words_not_said": sorted(set(hyp) & FAQ_WORDS - set(ref)),
                    "faq_words_missed": sorted(set(ref) & FAQ_WORDS - set(hyp)),
                    "audio_s": round(audio_s, 3), "decode_s": round(elapsed, 3),
                })  # fmt: skip
                logger.debug("%s %s %r -> %r", name, voice, text, heard)
        logger.info("voice %s done", voice)

    table: dict[str, dict[str, Any]] = {}
    for name in configs:
        mine = [r for r in rows if r["engine"] == name]
        decode_s = sorted(r["decode_s"] for r in mine if r["group"] != "long")
        entry: dict[str, Any] = {
            "rtf": round(sum(r["decode_s"] for r in mine) / sum(r["audio_s"] for r in mine), 3),
            "decode_s_median_short": decode_s[len(decode_s) // 2],
            "decode_s_long": [r["decode_s"] for r in mine if r["group"] == "long"],
        }
        for group in GROUPS:
            part = [r for r in mine if r["group"] == group]
            entry[f"wer_{group}"] = round(
                sum(r["errors"] for r in part) / sum(r["ref_words"] for r in part), 3
            )
            entry[f"faq_words_not_said_{group}"] = sum(len(r["faq_words_not_said"]) for r in part)
            entry[f"faq_words_missed_{group}"] = sum(len(r["faq_words_missed"]) for r in part)
        table[name] = entry
        run.result.row(
            name,
            f"WER exact {entry['wer_exact']:.0%} · paraphrase {entry['wer_paraphrase']:.0%}"
            f" · other {entry['wer_other']:.0%} · long {entry['wer_long']:.0%}"
            f" · RTF {entry['rtf']:.2f}x · median {entry['decode_s_median_short']:.2f} s",
            note=f"FAQ words not said: {entry['faq_words_not_said_paraphrase']} in paraphrases,"
            f" {entry['faq_words_not_said_other']} in other questions; FAQ words said but"
            f" missed: {sum(entry[f'faq_words_missed_{g}'] for g in GROUPS)}; median decode of"
            " the short questions",
        )
    run.result.data = {"table": table, "rows": rows}
    run.result.write()
    for row in run.result.summary:
        print(f"{row['metric']}: {row['value']}  ({row['note']})")


if __name__ == "__main__":
    main()
