"""Spelling numbers out as English words (US style, no "and")."""

from __future__ import annotations

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve "
         "thirteen fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion",
           "quintillion", "sextillion", "septillion", "octillion", "nonillion",
           "decillion")
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}

MAX_CARDINAL = 10 ** (3 * len(_SCALES)) - 1


def _below_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + ("-" + _ONES[ones] if ones else ""))
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def cardinal(n: int | str) -> str:
    """123456 or "123456" -> 'one hundred twenty-three thousand four hundred fifty-six'.

    Text passes its numbers as digit strings: one past the named scales is
    read digit by digit without becoming an int, since Python refuses int()
    of a string of more than 4300 digits (and text can hold any number)."""
    if isinstance(n, str):
        if not (n.isascii() and n.isdigit()):
            raise ValueError(f"cardinal wants an int or a string of digits 0-9, got {n[:40]!r}")
        if len(n.lstrip("0")) > len(str(MAX_CARDINAL)):
            return digits(n)
    n = int(n)
    if n < 0:
        return "minus " + cardinal(-n)
    if n > MAX_CARDINAL:
        # Past the named scales a reader says the digits.
        return digits(str(n))
    if n == 0:
        return "zero"
    groups = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            groups.append(" ".join(_below_thousand(group) + ([_SCALES[scale]] if scale else [])))
        scale += 1
    return " ".join(reversed(groups))


def ordinal(n: int | str) -> str:
    """21 or "21" -> 'twenty-first'."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    hyph_head, hyph, last_part = last.rpartition("-")
    if last_part in _ORDINAL_IRREGULAR:
        last_part = _ORDINAL_IRREGULAR[last_part]
    elif last_part.endswith("y"):
        last_part = last_part[:-1] + "ieth"
    else:
        last_part += "th"
    return head + sep + hyph_head + hyph + last_part


def digits(s: str) -> str:
    """'0427' -> 'zero four two seven'."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def year(n: int) -> str:
    """1776 -> 'seventeen seventy-six', 1900 -> 'nineteen hundred', 2005 -> 'two thousand five'."""
    if not 1000 <= n <= 9999:
        return cardinal(n)
    high, low = divmod(n, 100)
    if high % 10 == 0 and low < 10:
        return cardinal(n)  # 2000, 2005, 1009: "two thousand five"
    if low == 0:
        return cardinal(high) + " hundred"
    return cardinal(high) + " " + (("oh " + _ONES[low]) if low < 10 else cardinal(low))
