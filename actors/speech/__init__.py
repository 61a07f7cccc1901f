"""Speech engines for the speech actor: offline by default (pocketsphinx, espeak-ng), HTTP
Whisper/Kokoro peers behind a breaker with the offline engines as fallback.

Submodules, each with one job: ``actor`` (the speech actor), ``messages`` (what it
understands), ``errors``, ``audio`` (PCM16, resampling, WAV), ``commands`` (the voice
commands and their grammar), ``lexicon`` (pronunciations), ``stt`` and ``tts`` (the engines),
``http_client`` (blocking POST), ``resilient`` (retries, breaker, fallback), ``factory``
(engines from configuration). See docs/speech.md.
"""

__all__: list[str] = []


