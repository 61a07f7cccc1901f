"""Pronunciations for the command grammar's words, for pocketsphinx's dictionary.

Loading the full CMU dictionary (135k words, 3 MB) is most of a decoder's 0.5 s set-up and
memory, yet the grammar uses a few dozen words; so each decoder gets a small dictionary holding
only those. Words CMUdict lacks ("optimizer", "documenter") have hand-written ARPAbet entries
here; a command word missing from both is an error at start-up, not a silent mis-hearing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

from actors.speech.errors import SpeechError

__all__ = ["EXTRA_PRONUNCIATIONS", "cmudict_path", "dictionary_text"]


EXTRA_PRONUNCIATIONS: dict[str, tuple[str, ...]] = {
    "optimizer": ("AA P T AH M AY Z ER",),
    "documenter": ("D AA K Y AH M EH N T ER", "D AA K Y UW M EH N T ER"),
}


def cmudict_path() -> str:
    import pocketsphinx  # the [speech] extra: imported where it is needed

    return os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict[str, tuple[str, ...]]:
    """Word -> pronunciations (variants like ``word(2)`` folded in), read once per process."""
    entries: dict[str, list[str]] = {}
    with open(cmudict_path(), encoding="utf-8") as f:
        for line in f:
            word, _, phones = line.strip().partition(" ")
            if phones:
                entries.setdefault(word.split("(", 1)[0], []).append(phones.strip())
    return {w: tuple(p) for w, p in entries.items()}


def dictionary_text(words: Iterable[str]) -> str:
    """A pocketsphinx dictionary (``word PHONES``, variants as ``word(2)``) for ``words``."""
    cmu = _cmudict()
    lines: list[str] = []
    missing: list[str] = []
    for word in sorted(set(words)):
        prons = EXTRA_PRONUNCIATIONS.get(word) or cmu.get(word)
        if not prons:
            missing.append(word)
            continue
        for i, phones in enumerate(prons):
            lines.append(f"{word if i == 0 else f'{word}({i + 1})'} {phones}")
    if missing:
        raise SpeechError(f"no pronunciation for {', '.join(missing)}: add it to EXTRA_PRONUNCIATIONS")
    return "\n".join(lines) + "\n"
