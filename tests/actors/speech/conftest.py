"""Speech tests run the real engines: espeak-ng and sox from Debian, pocketsphinx from PyPI.

The session fixture installs the Debian packages with the project's own script, so a fresh
machine needs nothing by hand; if the script fails, every test here fails with its output
(never a skip: a silent skip would hide a broken install step).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors.speech.audio import Pcm16Audio, decode_wav
from actors.speech.stt import PocketSphinxStt

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "scripts" / "install-speech.sh"


@pytest.fixture(scope="session", autouse=True)
def speech_packages() -> None:
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/install-speech.sh failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}",
                    pytrace=False)


Speak = Callable[[str, int | None], Pcm16Audio]


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory, speech_packages: None) -> Speak:
    """``speak(text, rate)``: espeak-ng's US voice saying ``text`` (22,050 Hz), converted by sox
    to ``rate`` when given: an independent resampler to feed ours."""
    folder = tmp_path_factory.mktemp("spoken")
    cache: dict[tuple[str, int | None], Pcm16Audio] = {}

    def say(text: str, rate: int | None = None) -> Pcm16Audio:
        key = (text, rate)
        if key not in cache:
            name = f"{len(cache)}"
            raw = folder / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True, timeout=30)
            if rate is not None:
                converted = folder / f"{name}-{rate}.wav"
                subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(converted)],
                               check=True, timeout=30)
                raw = converted
            cache[key] = decode_wav(raw.read_bytes())
        return cache[key]

    return say


@pytest.fixture(scope="session")
def sphinx(speech_packages: None) -> Iterator[PocketSphinxStt]:
    engine = PocketSphinxStt()
    yield engine
    engine.close()
