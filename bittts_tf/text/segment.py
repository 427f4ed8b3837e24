"""Text longer than a fixed-size text graph, cut into segments that fit.

Each segment is a phoneme sequence as `FrontEnd.phonemes` makes it (starting
and ending with a pause), of at most `max_tokens` symbols. Cuts go after
pause punctuation where one fits, otherwise between words; no word is ever
split and nothing is dropped. Text that fits whole gives exactly
`FrontEnd.phonemes(text)`.
"""

from __future__ import annotations

import dataclasses

from bittts_tf.text.g2p import FrontEnd, join_with_pauses, words_and_pauses
from bittts_tf.text.normalize import TextError, _show, normalize_text


@dataclasses.dataclass
class _Word:
    text: str
    phones: list[str]
    pause_after: bool = False


def _words(front_end: FrontEnd, normalized: str) -> list[_Word]:
    return [_Word(word, front_end.g2p.word(word), pause)
            for word, pause in words_and_pauses(normalized)]


def _phones(words: list[_Word]) -> list[str]:
    return join_with_pauses((word.phones, word.pause_after) for word in words)


# The fewest symbols a segment needs: a one-phoneme word between two pauses.
MIN_TOKENS = 3


def segment_phonemes(front_end: FrontEnd, text: str, max_tokens: int) -> list[list[str]]:
    """Phoneme sequences of at most `max_tokens` symbols that together say `text`."""
    if max_tokens < MIN_TOKENS:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for a word between two pauses")
    words = _words(front_end, normalize_text(text))
    if not words:
        raise TextError(f"text {_show(text)}: no pronounceable words; after normalization "
                        "nothing readable is left")
    for word in words:
        if len(word.phones) + 2 > max_tokens:
            raise TextError(f"text {_show(text)}: the word {word.text!r} has {len(word.phones)} "
                            f"phonemes, more than the text graph's {max_tokens - 2} per segment")
    segments, start = [], 0
    while start < len(words):
        end = start + 1
        while end < len(words) and len(_phones(words[start:end + 1])) <= max_tokens:
            end += 1
        if end < len(words):
            # Prefer the last pause punctuation inside the segment.
            pauses = [i + 1 for i in range(start, end - 1) if words[i].pause_after]
            if pauses:
                end = pauses[-1]
        segments.append(_phones(words[start:end]))
        start = end
    return segments


def segment_ids(front_end: FrontEnd, text: str, max_tokens: int) -> list[list[int]]:
    return [front_end.symbols.encode(s) for s in segment_phonemes(front_end, text, max_tokens)]
