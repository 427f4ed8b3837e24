"""Exports a trained TTS as a model folder: bittts-export from a clone.

  python tools/export_tts.py --checkpoint=runs/am --vocoder_checkpoint=runs/voc \
      --out_dir=models/my_voice

The command lives in bittts_tf/commands/export_tts.py (--help lists its flags).
"""

from bittts_tf import commands

if __name__ == "__main__":
    commands.export()
