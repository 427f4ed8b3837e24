"""Festival's "radio" phone set mapped one-to-one onto this project's symbols.

Utterances synthesized by festival take their phoneme sequence from festival's
own Segment relation (not from our G2P), so that the ground-truth phone
durations line up one-to-one with the model input. Each festival phone
therefore maps to exactly one symbol: reduced and syllabic variants fold into
the nearest ARPAbet phone (ax -> AH0, axr -> ER0, ix -> IH0, el -> L, em -> M,
en -> N, nx -> N, dx -> D, hv -> HH), and every silence becomes the pause.
Vowel stress comes from the stress of the segment's syllable.
"""

from __future__ import annotations

from bittts_tf.text.symbols import CONSONANTS, PAUSE, VOWELS

_FIXED = {
    "ax": "AH0", "axr": "ER0", "ix": "IH0",
    "el": "L", "em": "M", "en": "N", "nx": "N", "dx": "D", "hv": "HH",
    "pau": PAUSE, "h#": PAUSE, "brk": PAUSE, "sil": PAUSE,
}
RADIO_VOWELS = tuple(v.lower() for v in VOWELS)
RADIO_CONSONANTS = tuple(c.lower() for c in CONSONANTS)
RADIO_PHONES = tuple(sorted(set(RADIO_VOWELS + RADIO_CONSONANTS + tuple(_FIXED))))


class FestivalPhoneError(ValueError):
    pass


def festival_to_symbol(phone: str, stress: int | str = 0, secondary_stress: bool = False) -> str:
    """One festival segment name (with its syllable stress) -> one symbol."""
    if phone in _FIXED:
        return _FIXED[phone]
    if phone in RADIO_CONSONANTS:
        return phone.upper()
    if phone in RADIO_VOWELS:
        try:
            level = int(stress)
        except (TypeError, ValueError):
            raise FestivalPhoneError(f"vowel {phone!r} has non-numeric stress {stress!r}") from None
        level = min(max(level, 0), 2)
        if level == 2 and not secondary_stress:
            level = 1
        return f"{phone.upper()}{level}"
    raise FestivalPhoneError(f"festival phone {phone!r} is not in the radio phone set "
                             f"({' '.join(RADIO_PHONES)})")


def merge_pauses(symbols: list[str], end_times: list[float]) -> tuple[list[str], list[float]]:
    """Consecutive pauses become one (the later end time wins), as in our G2P."""
    out_s: list[str] = []
    out_t: list[float] = []
    for s, t in zip(symbols, end_times):
        if s == PAUSE and out_s and out_s[-1] == PAUSE:
            out_t[-1] = t
        else:
            out_s.append(s)
            out_t.append(t)
    return out_s, out_t
