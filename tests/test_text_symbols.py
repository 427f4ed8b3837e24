import json

import pytest

from bittts_tf.text.festival import (RADIO_PHONES, FestivalPhoneError, festival_to_symbol,
                                     merge_pauses)
from bittts_tf.text.symbols import PAD, PAUSE, SymbolError, SymbolTable

# Pinned: changing the symbol list silently breaks every trained model.
FINGERPRINT_V1 = "e6db8db96e554971"


def test_ids_are_pinned():
    table = SymbolTable()
    assert len(table) == 2 + 24 + 45
    assert table.id_of(PAD) == 0 and table.id_of(PAUSE) == 1
    assert table.id_of("B") == 2 and table.id_of("ZH") == 25
    assert table.id_of("AA0") == 26 and table.id_of("UW2") == 70


def test_fingerprint_value_is_stable():
    # The exact value for version 1; update only with SYMBOL_SET_VERSION.
    assert SymbolTable().fingerprint() == FINGERPRINT_V1


def test_save_load_round_trip(tmp_path, rng):
    table = SymbolTable()
    path = tmp_path / "symbols.json"
    table.save(str(path))
    loaded = SymbolTable.load(str(path))
    ids = rng.integers(0, len(table), 50)
    assert loaded == table
    assert loaded.encode(table.decode(ids)) == list(ids)


def test_edited_file_is_detected(tmp_path):
    path = tmp_path / "symbols.json"
    SymbolTable().save(str(path))
    data = json.loads(path.read_text())
    data["symbols"][5], data["symbols"][6] = data["symbols"][6], data["symbols"][5]
    path.write_text(json.dumps(data))
    with pytest.raises(SymbolError, match="fingerprint"):
        SymbolTable.load(str(path))


def test_unknown_symbol_and_id_errors():
    table = SymbolTable()
    with pytest.raises(SymbolError, match="'XX'"):
        table.id_of("XX")
    with pytest.raises(SymbolError, match="outside"):
        table.decode([len(table)])


def test_every_festival_radio_phone_maps_into_the_table():
    table = SymbolTable()
    for phone in RADIO_PHONES:
        for stress in (0, 1, 2):
            assert festival_to_symbol(phone, stress) in table
    assert festival_to_symbol("ax", 1) == "AH0"
    assert festival_to_symbol("aa", 1) == "AA1"
    assert festival_to_symbol("aa", 2) == "AA1"
    assert festival_to_symbol("aa", 2, secondary_stress=True) == "AA2"
    assert festival_to_symbol("pau", 0) == PAUSE
    with pytest.raises(FestivalPhoneError, match="'qq'"):
        festival_to_symbol("qq", 0)


def test_merge_pauses_keeps_the_last_end_time():
    symbols, ends = merge_pauses([PAUSE, PAUSE, "B", PAUSE, PAUSE, PAUSE], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert symbols == [PAUSE, "B", PAUSE] and ends == [0.2, 0.3, 0.6]
