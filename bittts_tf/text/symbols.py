"""The phoneme symbol set: ARPAbet with lexical stress, plus padding and a pause.

Ids are part of a trained model: a model trained with one table and run with
another speaks garbage without any error. So the table is built from a fixed,
versioned list (never from data), saved next to every model (`SymbolTable.save`)
and checked by fingerprint when loaded.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Sequence

from bittts_tf import fileio

PAD = "<pad>"
PAUSE = "pau"

CONSONANTS = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P",
    "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
)
VOWELS = (
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW",
    "OY", "UH", "UW",
)
STRESSES = ("0", "1", "2")

# Bump when the list below changes; old models keep their saved table.
SYMBOL_SET_VERSION = 1

ARPABET_SYMBOLS: tuple[str, ...] = (
    (PAD, PAUSE)
    + CONSONANTS
    + tuple(v + s for v in VOWELS for s in STRESSES)
)


class SymbolError(ValueError):
    """A symbol or symbol table that does not match what the caller expects."""


def is_vowel(symbol: str) -> bool:
    return symbol[:-1] in VOWELS and symbol[-1:] in STRESSES


class SymbolTable:
    """Bidirectional map between phoneme symbols and integer ids."""

    def __init__(self, symbols: Sequence[str] = ARPABET_SYMBOLS,
                 version: int = SYMBOL_SET_VERSION):
        symbols = tuple(symbols)
        if len(set(symbols)) != len(symbols):
            raise SymbolError(f"symbol list has duplicates: {symbols}")
        if not symbols or symbols[0] != PAD:
            raise SymbolError(f"id 0 must be the padding symbol {PAD!r}, got {symbols[:1]}")
        self.symbols = symbols
        self.version = int(version)
        self._ids = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolTable) and self.symbols == other.symbols

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def pause_id(self) -> int:
        return self._ids[PAUSE]

    def id_of(self, symbol: str) -> int:
        try:
            return self._ids[symbol]
        except KeyError:
            raise SymbolError(f"unknown phoneme symbol {symbol!r}; the table has "
                              f"{len(self)} symbols (version {self.version})") from None

    def encode(self, symbols: Iterable[str]) -> list[int]:
        return [self.id_of(s) for s in symbols]

    def decode(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise SymbolError(f"phoneme id {i} is outside the table (0..{len(self) - 1})")
            out.append(self.symbols[i])
        return out

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.symbols).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"version": self.version, "symbols": list(self.symbols),
                "fingerprint": self.fingerprint()}

    @classmethod
    def from_dict(cls, data: dict) -> "SymbolTable":
        try:
            table = cls(data["symbols"], data["version"])
        except (KeyError, TypeError) as e:
            raise SymbolError(f"not a symbol table: missing {e}") from None
        if "fingerprint" in data and data["fingerprint"] != table.fingerprint():
            raise SymbolError("symbol table fingerprint does not match its symbols "
                              f"({data['fingerprint']} != {table.fingerprint()}); file edited?")
        return table

    def save(self, path: str) -> None:
        fileio.atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str) -> "SymbolTable":
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise SymbolError(f"{path}: not a JSON symbol table ({e})") from None
        return cls.from_dict(data)
