"""Corpus prompts from the everyday generator: deterministic plans, mixed
with the public-domain text at a share, every kind of everyday text, and
tools/make_corpus.py speaking them as the normalizer spells them out."""

import json
import re
import subprocess
import sys

import pytest

from conftest_corpus import MAKE_CORPUS, REPO, require_festival

from bittts_tf.data import prompts
from bittts_tf.eval import sets
from bittts_tf.text.normalize import normalize_text

ALL = [prompts.EVERYDAY, *prompts.SOURCES]


def texts(plan):
    return [p.text for p in plan]


@pytest.fixture(scope="module")
def read_pool():
    try:
        return prompts.collect_prompts()
    except prompts.PromptSourceError as e:
        pytest.skip(f"corpus sources not installed: {e}")


def test_plans_of_existing_corpora_are_unchanged(read_pool):
    # Read sources only: what make_corpus chose before the generator existed.
    assert texts(prompts.plan_prompts(prompts.SOURCES, 500, 1234)) == \
        prompts.choose_prompts(read_pool, 500, 1234)


def test_a_mixed_plan_is_deterministic_a_prefix_and_evenly_spread(read_pool):
    plan = prompts.plan_prompts(ALL, 600, 3, 1, 30, 160, everyday_share=0.6)
    assert plan == prompts.plan_prompts(ALL, 600, 3, 1, 30, 160, everyday_share=0.6)
    assert plan[:250] == prompts.plan_prompts(ALL, 250, 3, 1, 30, 160, everyday_share=0.6)
    assert texts(plan) != texts(prompts.plan_prompts(ALL, 600, 4, 1, 30, 160,
                                                     everyday_share=0.6))
    generated = [p.source == prompts.EVERYDAY for p in plan]
    assert sum(generated) == 360
    assert all(5 <= sum(generated[i:i + 10]) <= 7 for i in range(0, 600, 10))
    assert set(texts(p for p in plan if p.source == "read")) <= \
        set(prompts.collect_prompts(min_words=1, max_words=30, max_chars=160))
    assert len({sets.words(t) for t in texts(plan)}) == 600


def test_a_new_held_out_sentence_changes_only_the_slot_it_overlaps():
    base = prompts.plan_prompts([prompts.EVERYDAY], 300, 9, 1, 30, 160,
                                held_out=sets.HeldOut({"test": []}))
    victim = base[100].text
    again = prompts.plan_prompts([prompts.EVERYDAY], 300, 9, 1, 30, 160,
                                 held_out=sets.HeldOut({"test": [victim]}))
    changed = [i for i in range(300) if base[i] != again[i]]
    assert changed[0] == 100 and len(changed) <= 2, changed
    assert victim not in texts(again)


def test_the_generator_writes_every_kind_of_everyday_text():
    generated = texts(prompts.plan_prompts([prompts.EVERYDAY], 3000, 1, 1, 30, 160))
    lengths = [len(t.split()) for t in generated]
    share = {
        "questions": sum(t.endswith("?") for t in generated),
        "digits": sum(bool(re.search(r"\d", t)) for t in generated),
        "money": sum("$" in t or " cents" in t for t in generated),
        "percentages": sum("%" in t or "percent" in t for t in generated),
        "dates": sum(bool(re.search(r"\d(st|nd|rd|th)\b", t)) for t in generated),
        "times": sum(bool(re.search(r"o'clock|half past|quarter|noon|midnight", t))
                     for t in generated),
        "lists": sum(t.count(",") >= 2 and ", and " in t for t in generated),
        "device prompts": sum(bool(re.match(r"(Timer|Alarm|Battery|Your|Turn|In \d|Motion)",
                                            t)) for t in generated),
        "short (<= 3 words)": sum(n <= 3 for n in lengths),
        "long (>= 18 words)": sum(n >= 18 for n in lengths),
    }
    share = {k: v / len(generated) for k, v in share.items()}
    assert min(share.values()) >= 0.02, share
    assert share["questions"] >= 0.1 and share["digits"] >= 0.15, share
    assert min(lengths) >= 1 and max(lengths) <= 30
    # What festival is given: every digit, $ and % spelled out; no clock
    # times with a colon (the normalizer reads "7:30" as "seven: thirty").
    for text in generated:
        spoken = normalize_text(text)
        assert not re.search(r"[\d$%]", spoken), (text, spoken)
        assert not re.search(r"\d:\d", text), text


def test_the_length_filters_hold_for_generated_text():
    plan = prompts.plan_prompts([prompts.EVERYDAY], 500, 2, 6, 12, 70)
    assert all(6 <= len(t.split()) <= 12 and len(t) <= 70 for t in texts(plan))


@pytest.mark.parametrize("sources, share, problem", [
    (["novels"], 0.5, "unknown prompt sources ['novels']"),
    ([], 0.5, "unknown prompt sources []"),
    ([prompts.EVERYDAY], 1.5, "not between 0 and 1"),
])
def test_bad_sources_or_share_are_refused(sources, share, problem):
    with pytest.raises(prompts.PromptSourceError, match=re.escape(problem)):
        prompts.plan_prompts(sources, 3, 1, everyday_share=share)


def run(out_dir, *flags):
    return subprocess.run([sys.executable, MAKE_CORPUS, f"--out_dir={out_dir}", *flags],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


FLAGS = ["--num_utterances=4", "--voices=slt", "--sources=everyday,bible",
         "--everyday_share=0.5", "--min_words=1", "--max_words=30", "--seed=7",
         "--num_workers=1", "--batch_size=4"]


def test_make_corpus_speaks_generated_prompts_as_the_normalizer_spells_them(tmp_path):
    require_festival()
    out = tmp_path / "corpus"
    proc = run(out, *FLAGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|") for line in (out / "metadata.csv").read_text().splitlines()]
    plan = prompts.plan_prompts(["everyday", "bible"], 4, 7, 1, 30, 160, 0.5)
    assert [r[1] for r in rows] == texts(plan)
    assert [p.source for p in plan] == ["read", "everyday"] * 2
    for row, prompt in zip(rows, plan):
        record = json.loads((out / "segments" / f"{row[0]}.json").read_text())
        assert row[2] == normalize_text(row[1])
        if prompt.source == prompts.EVERYDAY and row[2] != row[1]:
            assert record["spoken"] == row[2]     # festival said the spelled-out words
        else:
            assert "spoken" not in record
    settings = json.loads((out / "corpus_settings.json").read_text())
    assert settings["everyday_share"] == 0.5 and settings["sources"] == ["everyday", "bible"]

    again = run(out, *FLAGS)
    assert again.returncode == 0 and "4 of 4 utterances already done" in again.stdout
    other = run(out, *FLAGS, "--everyday_share=0.7")
    lines = [line for line in other.stderr.splitlines() if line.strip()]
    assert other.returncode == 1 and len(lines) == 1 and "everyday_share" in lines[0], lines


def test_make_corpus_refuses_an_unknown_source_before_writing_anything(tmp_path):
    out = tmp_path / "corpus"
    proc = run(out, "--sources=everyday,novels", "--num_utterances=2")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "novels" in lines[0], lines
    assert not (out / "corpus_settings.json").exists()
