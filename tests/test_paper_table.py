"""tools/paper_table.py (bittts_tf/eval/paper_table.py) on voice folders made
up here, its columns against figures computed here; and the stage commands
tools/paper_voices.py --dry_run prints, with their CPU budgets."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bittts_tf.audio.config import AudioConfig
from bittts_tf.audio.io import save_wav
from bittts_tf.eval import metrics, paper_table
from bittts_tf.training import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 16000
SENTENCES = ["The first sentence.", "A second one.", "And a third."]


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def tone(rng, seconds, pitch):
    """A voiced-ish clip: a few harmonics and a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    audio = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
    return (0.2 * audio / np.abs(audio).max() + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_voice(rng, out_dir, name, quantize, bits, graph_sizes, weights, with_scores=True,
               cpu=(24.6, 94.1), festival_clips=None, int4_weights=None):
    """A voice folder as tools/paper_voices.py leaves it; returns what was written."""
    voice = os.path.join(out_dir, name)
    model = os.path.join(voice, "model")
    os.makedirs(model)
    sources = {}
    for key, minutes in zip(("checkpoint", "vocoder_checkpoint"), cpu):
        path = os.path.join(voice, f"{key}.npz")
        checkpoints.write(path, {}, {"step": 100, "cpu_seconds": 60.0 * minutes})
        sources[key] = path
    write_json(os.path.join(model, "manifest.json"),
               {"model_config": {"quantize": quantize, "weight_bits": bits}, "source": sources})
    files = {"text.tflite": graph_sizes[0], "frames.tflite": graph_sizes[1],
             "text.int8.tflite": graph_sizes[0] // 3}
    for file_name, size in files.items():
        with open(os.path.join(model, file_name), "wb") as f:
            f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    report = {"graphs": {g: {"ternary_weights": w[0], "float32_weights": w[1], "int8_weights": 0}
                         for g, w in zip(("text", "frames"), weights)},
              "total": {"ternary_weights": sum(w[0] for w in weights),
                        "bits_per_ternary_weight": 1.6 if quantize != "none" and bits == 1.58
                        else None}}
    if int4_weights:  # a folder exported since 4-bit kernels are packed as INT4
        for graph, count in zip(("text", "frames"), int4_weights):
            report["graphs"][graph]["int4_weights"] = count
    write_json(os.path.join(model, "size_report.json"), report)
    with open(os.path.join(model, "manifest.json"), "rb") as f:
        manifest_bytes = len(f.read())
    with open(os.path.join(model, "size_report.json"), "rb") as f:
        report_bytes = len(f.read())
    written = {"folder_bytes": sum(files.values()) + manifest_bytes + report_bytes}
    if not with_scores:
        return written
    summary = {"wer": float(rng.uniform(0.05, 0.3)), "cer": float(rng.uniform(0.02, 0.2)),
               "dnsmos_ovrl": float(rng.uniform(2, 3.5)), "sentences": len(SENTENCES)}
    rows = [{"sentence": s} for s in SENTENCES]
    clips = [tone(rng, rng.uniform(0.25, 0.4), rng.uniform(100, 220)) for _ in SENTENCES]
    for index, clip in enumerate(clips):
        save_wav(paper_table.clip_path(os.path.join(voice, "eval_test_wavs"), "model", index),
                 clip, RATE)
    write_json(os.path.join(voice, "eval_test.json"),
               {"set": "test", "audio_config": AudioConfig(sample_rate=RATE).to_dict(),
                "systems": {"model": {"summary": summary, "sentences": rows}}})
    rtf = float(rng.uniform(0.001, 0.02))
    write_json(os.path.join(voice, "bench_tts.json"), {"num_threads": 1, "configurations": {
        "decode at load": {"rtf": rtf}, "in-graph decode": {"rtf": 2 * rtf}}})
    flash, arena = int(rng.integers(10**5, 10**6)), int(rng.integers(10**4, 10**5))
    write_json(os.path.join(voice, "budget.json"), {"variants": {"int8": {"targets": {
        "flash_bytes": flash, "max_arena_bytes": arena}}}})
    written.update(summary, rtf=rtf, flash=flash, arena=arena, clips=clips)
    return written


def make_festival(rng, out_dir):
    folder = os.path.join(out_dir, "festival")
    # festival spoke the sentences in another order: matched by text
    order = [2, 0, 1]
    clips = {SENTENCES[i]: tone(rng, rng.uniform(0.25, 0.4), rng.uniform(100, 220)) for i in order}
    for index, i in enumerate(order):
        save_wav(paper_table.clip_path(os.path.join(folder, "eval_test_wavs"), "festival", index),
                 clips[SENTENCES[i]], RATE)
    summary = {"wer": 0.09, "cer": 0.05, "dnsmos_ovrl": 3.04, "sentences": 3}
    write_json(os.path.join(folder, "eval_test.json"), {"set": "test", "systems": {"festival": {
        "summary": summary, "sentences": [{"sentence": SENTENCES[i]} for i in order]}}})
    return clips


def plain_dtw_mcd(reference, test, config):
    """MCD along a dynamic-time-warping path, computed the slow plain way."""
    a = metrics.mel_cepstrum(reference, config)[:, 1:]
    b = metrics.mel_cepstrum(test, config)[:, 1:]
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j], total[i, j - 1],
                                                   total[i - 1, j - 1])
    i, j, path = n, m, []
    while (i, j) != (0, 0):
        path.append(cost[i - 1, j - 1])
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min(steps, key=lambda s: total[s] if min(s) >= 0 else np.inf)
    return metrics.MCD_CONSTANT * float(np.mean(path))


def test_table_columns_match_figures_computed_here(tmp_path, rng):
    out = str(tmp_path / "paper")
    ternary = make_voice(rng, out, "ternary_all", "all", 1.58, (205_000, 386_000),
                         [(521_472, 12_772), (1_165_568, 25_013)])
    make_voice(rng, out, "4bit", "all", 4.0, (2_186_000, 4_814_000),
               [(0, 534_244), (0, 1_190_581)], with_scores=False)
    make_voice(rng, out, "4bit_int4", "all", 4.0, (360_000, 1_194_000),
               [(0, 4_000), (0, 140_000)], with_scores=False, int4_weights=(530_000, 1_050_000))
    festival = make_festival(rng, out)

    table = paper_table.build_table(out, ["ternary_all", "4bit", "4bit_int4", "float32_small"])
    rows = {row["voice"]: row for row in table["voices"]}

    row = rows["ternary_all"]
    params = 521_472 + 12_772 + 1_165_568 + 25_013
    assert row["params"] == params
    assert row["graph_bytes"] == 205_000 + 386_000
    assert row["folder_bytes"] == ternary["folder_bytes"]
    assert row["bits_per_weight"] == pytest.approx(8 * (205_000 + 386_000) / params)
    assert row["weights"] == "1.58 / 1.58"
    assert row["cpu_minutes"] == "24.6 + 94.1"
    assert (row["wer"], row["cer"], row["dnsmos_ovrl"]) == (ternary["wer"], ternary["cer"],
                                                            ternary["dnsmos_ovrl"])
    assert row["rtf"] == ternary["rtf"] and row["rtf_threads"] == 1
    assert (row["int8_flash_bytes"], row["int8_arena_bytes"]) == (ternary["flash"], ternary["arena"])
    config = AudioConfig(sample_rate=RATE)
    expected = np.mean([plain_dtw_mcd(festival[s], clip, config)
                        for s, clip in zip(SENTENCES, ternary["clips"])])
    assert row["mcd_sentences"] == 3
    # the clips went through 16-bit WAV files, the plain computation did not
    assert row["mcd_db"] == pytest.approx(expected, rel=0.02)
    assert metrics.mcd_dtw(festival[SENTENCES[0]], festival[SENTENCES[0]], config) == 0.0

    row = rows["4bit"]
    assert row["bits_per_weight"] == pytest.approx(8 * (2_186_000 + 4_814_000)
                                                   / (534_244 + 1_190_581))
    assert row["weights"] == "4 / 4" and "float32 constants" in row["note"]
    assert row["wer"] is None and row["mcd_db"] is None and row["rtf"] is None
    row = rows["4bit_int4"]
    assert row["params"] == 4_000 + 140_000 + 530_000 + 1_050_000
    assert row["note"].startswith("its 1,580,000 4-bit weights are INT4 tensors")

    row = rows["float32_small"]
    assert not row["present"]
    assert all(row[key] is None for key, _, _ in paper_table.COLUMNS)
    assert table["reference"]["wer"] == 0.09

    markdown = paper_table.markdown(table)
    blank = [line for line in markdown.splitlines() if line.startswith("| float32_small |")]
    assert blank == ["| float32_small |" + "  |" * len(paper_table.COLUMNS)]
    assert "| festival |" in markdown


def test_the_tool_writes_markdown_json_and_png(tmp_path, rng):
    out = str(tmp_path / "paper")
    ternary = make_voice(rng, out, "ternary_all", "vocoder", 1.58, (1000, 3000),
                         [(4000, 100), (12000, 300)])
    stem = str(tmp_path / "report" / "table")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "paper_table.py"),
                             f"--out_dir={out}", f"--output={stem}", "--nomcd"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads(open(stem + ".json").read())
    rows = {row["voice"]: row for row in table["voices"]}
    assert list(rows) == list(paper_table.VOICES)   # the missing ones as blanks
    assert rows["ternary_all"]["weights"] == "32 / 1.58"
    assert rows["ternary_all"]["bits_per_weight"] == pytest.approx(8 * 4000 / 16400)
    assert rows["ternary_all"]["wer"] == pytest.approx(ternary["wer"])
    assert table["reference"]["present"] is False
    assert open(stem + ".png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| ternary_all | 32 / 1.58 | 16,400 | 4,000 |" in open(stem + ".md").read()


def dry_run(tmp_path, *flags):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "paper_voices.py"),
                             "--dry_run", f"--root={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
                             *flags], capture_output=True, text=True, timeout=120, check=False,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1]
            for line in result.stdout.splitlines() if ": " in line and "/" in line.split(": ")[0]}


def test_paper_voices_dry_run_prints_every_stage_with_its_budget(tmp_path):
    stages = dry_run(tmp_path)
    for voice in ("float32", "ternary_all", "ternary_am", "4bit", "float32_small"):
        for stage, minutes in (("acoustic", 25), ("warmup", 30), ("adversarial", 62),
                               ("finetune", 95)):
            command = stages[f"{voice}/{stage}"]
            assert "tools/train.py" in command and f"--max_cpu_minutes={minutes} " in command
            assert "--checkpoint_every=500" in command and "--corpus=data/slt_varied_cache" in command
        for stage in ("acoustic_average", "adversarial_average", "finetune_average", "export",
                      "evaluate", "bench", "budget"):
            assert f"{voice}/{stage}" in stages
        assert "--set=test" in stages[f"{voice}/evaluate"]
        assert "--num_threads=1" in stages[f"{voice}/bench"]
    assert "--systems=festival" in stages["festival/evaluate"]
    quantize = {voice: (stages[f"{voice}/acoustic"].split("--quantize=")[1].split()[0],
                        stages[f"{voice}/finetune"].split("--quantize=")[1].split()[0])
                for voice in ("float32", "ternary_all", "ternary_am", "4bit", "float32_small")}
    assert quantize == {"float32": ("none", "none"), "ternary_all": ("acoustic", "vocoder"),
                        "ternary_am": ("acoustic", "none"), "4bit": ("acoustic", "vocoder"),
                        "float32_small": ("none", "none")}
    assert "--weight_bits=4" in stages["4bit/acoustic"] and "--weight_bits=4" in stages["4bit/warmup"]
    assert "encoder_channels=48" in stages["float32_small/acoustic"]
    assert "--vocoder_config=n_scales=0,channels=40,hidden_channels=128" in stages[
        "float32_small/adversarial"]
    assert "--acoustic_config=dropout=0.0 " in stages["ternary_all/acoustic"]
    assert "--teacher_acoustic=" in stages["ternary_all/finetune"]


def test_paper_voices_dry_run_takes_up_what_finished_stages_chose(tmp_path):
    done = tmp_path / "runs" / "ternary_am" / "done"
    chosen = [{"path": f"/x/am/kept/ckpt-0000{s}.npz", "step": s, "cpu_minutes": m}
              for s, m in ((2500, 18.0), (3000, 21.4), (3500, 24.9))]
    write_json(str(done / "acoustic.json"), {"chosen": chosen})
    write_json(str(done / "warmup.json"), {"chosen": [{"path": "/x/warm/kept/ckpt-00007000.npz",
                                                      "step": 7000, "cpu_minutes": 29.6}]})
    stages = dry_run(tmp_path, "--voices=ternary_am")
    assert stages["ternary_am/acoustic"].startswith("done")
    assert ("--checkpoints=" + ",".join(c["path"] for c in chosen)) in stages[
        "ternary_am/acoustic_average"]
    adversarial = stages["ternary_am/adversarial"]
    assert "--init_from=/x/warm/kept/ckpt-00007000.npz" in adversarial
    assert "--generator_warmup_steps=7000" in adversarial
    assert "--generator_warmup_steps=7000" in stages["ternary_am/finetune"]


def test_paper_voices_dry_run_says_how_far_an_unfinished_stage_got(tmp_path, rng):
    """The newest checkpoint of a stage without its marker, in the run's
    checkpoints/ or kept/ folder (train.py deletes old ones; the driver keeps
    links), gives the step and CPU minutes; a dry run writes nothing."""
    steps = sorted(int(s) for s in rng.choice(np.arange(1, 400), 3, replace=False) * 500)
    minutes = sorted(float(m) for m in rng.uniform(0.5, 29.5, 3).round(1))
    warmup = tmp_path / "runs" / "ternary_am" / "voc_warmup"
    newest_in = str(rng.choice(["checkpoints", "kept"]))
    folders = ["kept", "kept", newest_in]
    for folder, step, minute in zip(folders, steps, minutes):
        checkpoints.write(str(warmup / folder / f"ckpt-{step:08d}.npz"), {},
                          {"step": step, "cpu_seconds": 60.0 * minute})
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    stages = dry_run(tmp_path, "--voices=ternary_am", "--nofestival")
    assert stages["ternary_am/warmup"].startswith(
        f"under way, {minutes[-1]:.1f} of 30 CPU minutes at step {steps[-1]}; ")
    assert "tools/train.py" in stages["ternary_am/warmup"]
    assert "under way" not in stages["ternary_am/acoustic"]
    assert "under way" not in stages["ternary_am/adversarial"]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_paper_voices_second_driver_leaves_festival_to_the_first(tmp_path):
    stages = dry_run(tmp_path, "--voices=ternary_am,4bit", "--nofestival")
    assert "ternary_am/evaluate" in stages and "4bit/evaluate" in stages
    assert not [name for name in stages if name.startswith("festival/")]
    assert "festival/evaluate" in dry_run(tmp_path, "--voices=ternary_am")


SOURCE_STAGES = ["acoustic", "acoustic_average", "warmup", "adversarial", "adversarial_average",
                 "finetune", "finetune_average", "pair", "joint", "joint_average", "export",
                 "evaluate", "bench", "budget"]
TWIN_BUDGETS = ["--acoustic_minutes=36.6", "--warmup_minutes=27.8", "--adversarial_minutes=61.9",
                "--finetune_minutes=295.7", "--joint_minutes=212.5"]


def test_paper_voices_source_phase_voices_end_with_a_joint_stage(tmp_path):
    stages = dry_run(tmp_path, "--voices=float32_src,ternary_src", "--nofestival", *TWIN_BUDGETS)
    out = str(tmp_path / "out")
    for voice, quantize, head in (("float32_src", ("none", "none", "none"), ""),
                                  ("ternary_src", ("acoustic", "vocoder", "all"),
                                   "quantize_head=true,")):
        names = [name.split("/", 1)[1] for name in stages if name.startswith(voice + "/")]
        assert names == SOURCE_STAGES
        for stage in ("acoustic", "warmup", "adversarial", "finetune", "joint"):
            assert "--acoustic_config=dropout=0.0,frame_f0=true " in stages[f"{voice}/{stage}"]
        assert (f"--vocoder_config={head}source_phase_cutoff=4000,source_f0_input=false "
                in stages[f"{voice}/warmup"])
        for stage in ("adversarial", "finetune", "joint"):
            assert (f"--vocoder_config=n_scales=0,{head}source_phase_cutoff=4000,"
                    "source_f0_input=false " in stages[f"{voice}/{stage}"])
        for stage, minutes in (("acoustic", 36.6), ("warmup", 27.8), ("adversarial", 61.9),
                               ("finetune", 295.7), ("joint", 212.5)):
            assert f"--max_cpu_minutes={minutes} " in stages[f"{voice}/{stage}"]
        assert [stages[f"{voice}/{stage}"].split("--quantize=")[1].split()[0]
                for stage in ("acoustic", "finetune", "joint")] == list(quantize)

        pair = os.path.join(out, voice, "pair.npz")
        assert stages[f"{voice}/pair"].split(" ", 1)[1] == (
            f"tools/pair_checkpoints.py --acoustic={os.path.join(out, voice, 'am_avg3.npz')} "
            f"--vocoder={os.path.join(out, voice, 'voc_ft_avg2.npz')} --output={pair}")
        joint = stages[f"{voice}/joint"]
        for flag in ("--mode=joint", "--batch_size=16", "--segment_frames=48",
                     "--learning_rate=1e-4", "--lr_decay_rate=0.995", "--stft_loss_weight=9",
                     "--use_ground_truth_durations", "--target_f0_steps=1000000",
                     "--generator_warmup_steps=300", f"--init_from={pair}",
                     f"--output_dir={tmp_path / 'runs' / voice / 'joint'}"):
            assert f"{flag} " in joint + " ", flag
        assert "--teacher_acoustic" not in joint
        assert os.path.join(out, voice, "joint_avg2.npz") in stages[f"{voice}/joint_average"]
        export = stages[f"{voice}/export"]
        assert f"--checkpoint={os.path.join(out, voice, 'joint_avg2.npz')} " in export
        assert "--vocoder_checkpoint" not in export


def test_paper_voices_joint_voices_run_only_when_named_with_a_joint_budget(tmp_path):
    stages = dry_run(tmp_path)
    assert not [name for name in stages if "_src/" in name or name.endswith(("/pair", "/joint"))]
    assert "--vocoder_checkpoint=" in stages["float32/export"]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "paper_voices.py"),
                             "--dry_run", "--voices=float32,ternary_src", f"--root={tmp_path}"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "paper_voices: --voices: a joint stage ends ternary_src; give its budget, --joint_minutes"]


def test_paper_voices_refuses_budgets_that_would_not_run_as_asked(tmp_path):
    """A budget of 0 or less would train for every step (train.py reads it
    as no limit), and a vocoder stage that ends before the one before it
    would start over budget and leave nothing to average."""
    cases = [(["--voices="], "--voices: name one or more voices"),
             (["--acoustic_minutes=0"], "--acoustic_minutes must be positive"),
             (["--acoustic_minutes=-1"], "--acoustic_minutes must be positive"),
             (["--warmup_minutes=0"], "the vocoder's budgets must grow"),
             (["--warmup_minutes=30", "--adversarial_minutes=30"], "the vocoder's budgets must grow"),
             (["--adversarial_minutes=96", "--finetune_minutes=95"],
              "the vocoder's budgets must grow")]
    for flags_given, message in cases:
        result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "paper_voices.py"),
                                 "--dry_run", f"--root={tmp_path / 'runs'}",
                                 f"--out={tmp_path / 'out'}", *flags_given],
                                capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
        assert result.returncode != 0, flags_given
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (flags_given, result.stderr[-1000:])
    assert not (tmp_path / "runs").exists()
