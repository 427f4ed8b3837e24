"""A random tiny TTS that speaks like a trained one, for export and runtime tests."""

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import keras
import numpy as np

from bittts_tf.models import build, configs
from bittts_tf.text import FrontEnd
from bittts_tf.training import checkpoints


def random_tts(seed: int, vocoder_overrides: dict | None = None, weight_bits=1.58,
               source_phase: bool = False):
    """(config, acoustic, vocoder): the tiny preset, ternary everywhere (or
    `weight_bits`), with durations of a few frames a phoneme as a trained
    model predicts. `source_phase`: a frame F0 head (random, so F0 and
    voicing vary) and a vocoder with a 4 kHz source phase."""
    keras.utils.set_random_seed(seed)
    if source_phase:
        vocoder_overrides = {**(vocoder_overrides or {}), "source_phase_cutoff": 4000.0}
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols),
                            vocoder_overrides=vocoder_overrides, weight_bits=weight_bits,
                            frame_f0=source_phase)
    acoustic, vocoder = build.build_acoustic(config), build.build_generator(config)
    head = acoustic.variance_adaptor.duration_predictor.head
    head.bias.assign([np.log(5.0)])
    head.kernel.assign(head.kernel * 0.05)
    if source_phase:
        rng = np.random.default_rng(seed)
        f0_input = vocoder.f0_input.variables if vocoder.f0_input is not None else []
        for variable in acoustic.f0_projection.variables + f0_input:
            variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    return config, acoustic, vocoder


def random_tts_for_int8(seed: int, max_tokens: int):
    """(config, acoustic, vocoder, utterances): random_tts with a mel that
    varies as a trained one does (a random mel projection), and four random
    phoneme sequences of 8..max_tokens ids to calibrate its int8 graphs on."""
    config, acoustic, vocoder = random_tts(seed)
    projection = acoustic.mel_projection
    projection.kernel.assign(np.random.default_rng(seed).normal(
        0, 1 / np.sqrt(projection.kernel.shape[0]), projection.kernel.shape))
    rng = np.random.default_rng(seed)
    utterances = [{"phonemes": rng.integers(1, 71, int(rng.integers(8, max_tokens + 1)))}
                  for _ in range(4)]
    return config, acoustic, vocoder, utterances


def save_small_vocoder_run(seed: int, run: Path, step: int) -> Path:
    """`run`, holding a checkpoint at `step` of a small ternary frame vocoder
    (the tiny preset at 16 channels, 24 hidden, 2 blocks) with random
    weights, saved as a training run saves one."""
    keras.utils.set_random_seed(seed)
    config = configs.preset("tiny", quantize="vocoder")
    config = dataclasses.replace(config, vocoder=dataclasses.replace(
        config.vocoder, channels=16, hidden_channels=24, blocks=2))
    checkpoints.save(str(run / "checkpoints"), step, {"generator": build.build_generator(config)},
                     {}, {"model_config": config.to_dict()})
    return run


def random_recovered_checkpoint(rng: np.random.Generator, folder: Path):
    """(path, acoustic model, metadata) of a checkpoint of both models of the
    tiny ternary preset, random weights (normal, sd 0.1), saved as
    tools/recover_checkpoint.py saves a voice rebuilt from its folder: the
    start of a joint fine-tune."""
    config = configs.preset("tiny", quantize="all", n_symbols=len(FrontEnd().symbols))
    acoustic, generator = build.build_acoustic(config), build.build_generator(config)
    for variable in acoustic.trainable_variables + generator.trainable_variables:
        variable.assign(rng.normal(0, 0.1, variable.shape))
    metadata = {"model_config": config.to_dict(), "recovered_from": {"model_dir": "a folder"}}
    path = checkpoints.save(str(folder), 0, {"acoustic": acoustic, "generator": generator}, {},
                            metadata, keep=0)
    return path, acoustic, metadata


# --- One random int8-ready voice shared by the export and firmware tests -------
#
# test_tflm, test_firmware, test_export_tts and test_export_int8 each built
# and exported folders of a random tiny voice of their own (the same preset,
# steps and calibration); converting and calibrating them was most of those
# files' set-up (the int8 folder three times a run). They now
# take the folders from here: one voice a run (a fresh seed, printed with
# every test that uses it, replayable with BITTTS_FIXTURE_SEED), each folder
# exported once by whichever pytest-xdist worker asks first and read by the
# others (a file lock in the run's shared temporary folder).

SHARED_VOICE = "shared int8 voice (test_tflm, test_firmware, test_export_tts, test_export_int8)"
SHARED_VOICE_MAX_TOKENS = 24


def _shared_root(tmp_path_factory) -> Path:
    """A folder all xdist workers of this run share (the workers' base temp
    folders sit side by side in it); without xdist, this process's own."""
    import os
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "shared_voices"
    root.mkdir(exist_ok=True)
    return root


class _Locked:
    """An exclusive flock on `path` for the block (between processes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
        return False


def shared_voice_seed(tmp_path_factory) -> int:
    """The shared voice's seed: drawn (and printed) by the first worker that
    asks, read back (and printed) by the others."""
    from seeds import SHARED_SEEDS, fresh_seed
    root = _shared_root(tmp_path_factory)
    if str(root) in _seeds:
        return _seeds[str(root)]
    with _Locked(root / "seed.lock"):
        path = root / "seed"
        if path.exists():
            seed = int(path.read_text())
            print(f"{SHARED_VOICE}: seed {seed}, drawn by another worker of this run "
                  f"(replay with BITTTS_FIXTURE_SEED={seed})")
            SHARED_SEEDS[SHARED_VOICE] = seed
        else:
            seed = fresh_seed(SHARED_VOICE)
            path.write_text(str(seed))
    _seeds[str(root)] = seed
    return seed


_seeds: dict[str, int] = {}


def _weights_digest(*models) -> str:
    """Of every variable's shape, dtype and values, in the models' order; not
    of the paths, which hold per-process counters (a dropout's state is
    "seed_generator_28/..." in a worker that built other models first)."""
    import hashlib
    digest = hashlib.sha256()
    for model in models:
        for variable in model.variables:
            value = np.ascontiguousarray(np.asarray(variable))
            digest.update(f"{value.shape} {value.dtype}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


_voices: dict[int, tuple] = {}


def shared_voice(tmp_path_factory):
    """(seed, config, acoustic, vocoder, utterances): random_tts_for_int8 of
    the shared seed, built once in this process. Its weights must be the ones
    the run's folders were exported from (whichever worker exported them):
    checked against the digest the first builder recorded, and again on
    every later request in this process."""
    seed = shared_voice_seed(tmp_path_factory)
    if seed not in _voices:
        config, acoustic, vocoder, utterances = random_tts_for_int8(seed, SHARED_VOICE_MAX_TOKENS)
        digest = _weights_digest(acoustic, vocoder)
        root = _shared_root(tmp_path_factory)
        with _Locked(root / "seed.lock"):
            recorded = root / f"weights-{seed}.sha256"
            if recorded.exists():
                assert recorded.read_text() == digest, (
                    f"{SHARED_VOICE}: seed {seed} built other weights in this process than in "
                    "the one that exported the shared folders")
            else:
                recorded.write_text(digest)
        _voices[seed] = seed, config, acoustic, vocoder, utterances, digest
    seed, config, acoustic, vocoder, utterances, digest = _voices[seed]
    # Shared within this process too: no test file may have changed its weights.
    assert _weights_digest(acoustic, vocoder) == digest, f"{SHARED_VOICE}: weights changed"
    return seed, config, acoustic, vocoder, utterances


# The steps the shared voice is exported at, and what else each folder holds.
# One folder per step, so that the files asking for a step share it: 4 holds
# the int8 graphs (test_export_tts, test_export_int8, test_tflm, test_firmware),
# 40, above the tiny preset's delay of 34, a size report against float32
# graphs (test_export_tts, test_firmware). A packed export costs ~10 s of CPU.
SHARED_FOLDERS = {1: {"int8": False, "float32_baseline": False},
                  4: {"int8": True, "float32_baseline": False},
                  40: {"int8": False, "float32_baseline": True}}


def shared_voice_folder(tmp_path_factory, step: int) -> str:
    """The shared voice's model folder at `step`, one of SHARED_FOLDERS (the
    packed graphs; with "int8", also the int8 graphs calibrated on its four
    random utterances; with "float32_baseline", a size report against float32
    graphs), exported on first request in this run. Read-only: tests that
    damage a folder copy it."""
    from bittts_tf.export import tts_graphs
    from bittts_tf.text import FrontEnd
    if step not in SHARED_FOLDERS:
        raise ValueError(f"the shared voice is exported at steps {sorted(SHARED_FOLDERS)}, "
                         f"not {step}")
    int8, float32_baseline = (SHARED_FOLDERS[step][k] for k in ("int8", "float32_baseline"))
    root = _shared_root(tmp_path_factory)
    seed = shared_voice_seed(tmp_path_factory)
    name = f"voice{seed}_step{step}"
    path = root / name
    with _Locked(root / f"{name}.lock"):
        if not path.exists():
            _, config, acoustic, vocoder, utterances = shared_voice(tmp_path_factory)
            partial = root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)   # a failed earlier attempt's
            int8_graphs = {}
            real_export_int8 = tts_graphs.export_int8_graphs

            def export_int8_kept(*args, **kwargs):
                int8_graphs.update(real_export_int8(*args, **kwargs))
                return int8_graphs

            # The int8 ConvertedGraphs export_model_folder made, kept for
            # test_export_int8: exporting them again there cost ~10 s of CPU.
            tts_graphs.export_int8_graphs = export_int8_kept
            try:
                report = tts_graphs.export_model_folder(
                    str(partial), acoustic, vocoder, config, FrontEnd(), SHARED_VOICE_MAX_TOKENS,
                    step, {"test": True}, float32_baseline=float32_baseline,
                    int8_utterances=utterances if int8 else None)
            finally:
                tts_graphs.export_int8_graphs = real_export_int8
            assert bool(int8_graphs) == int8, sorted(int8_graphs)
            (root / f"{name}.returned_report.json").write_text(json.dumps(report))
            if int8:
                (root / f"{name}.int8_graphs.pickle").write_bytes(pickle.dumps(int8_graphs))
            partial.rename(path)
    return str(path)


def shared_voice_int8_graphs(tmp_path_factory) -> dict:
    """The int8 ConvertedGraphs (packed, folded, shipped, tensor reports) that
    export_model_folder made for the shared voice's int8 folder and wrote
    into it (the shipped form)."""
    step = next(step for step, extras in SHARED_FOLDERS.items() if extras["int8"])
    folder = shared_voice_folder(tmp_path_factory, step)
    return pickle.loads(Path(f"{folder}.int8_graphs.pickle").read_bytes())


def shared_voice_export_report(folder: str) -> dict:
    """What export_model_folder returned when it wrote `folder` (a
    shared_voice_folder), as it returned it."""
    return json.loads(Path(f"{folder}.returned_report.json").read_text())
