"""Speaks text through an exported model folder: bittts-speak from a clone.

  python tools/speak.py --model_dir=models/slt_tiny --text="Hello there." --output=hello.wav

The command lives in bittts_tf/commands/speak.py (--help lists its flags).
"""

from bittts_tf import commands

if __name__ == "__main__":
    commands.speak()
