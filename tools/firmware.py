"""Generates a model folder's firmware sources: bittts-firmware from a clone.

  python tools/firmware.py --model_dir=models/slt_tiny --out_dir=fw/generated \
      --phrase="Hello there." --phrase="The battery is low."

The command lives in bittts_tf/commands/firmware.py (--help lists its flags).
"""

from bittts_tf import commands

if __name__ == "__main__":
    commands.firmware()
