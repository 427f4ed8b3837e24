"""Scores an exported model folder: bittts-evaluate from a clone.

  python tools/evaluate.py --model_dir=out/model --output=out/eval.json --audio_dir=out/eval_wavs

The command lives in bittts_tf/commands/evaluate.py (--help lists its flags).
"""

from bittts_tf import commands

if __name__ == "__main__":
    commands.evaluate()
