"""The command line of the modules that generate a committed C header from
their constants: `python -m <module>` prints the header, `--write-header`
writes it where the C code includes it from."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Callable


def main(description: str, header_path: pathlib.Path, c_header: Callable[[], str],
         argv=None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write-header", action="store_true", help=f"write {header_path}")
    args = parser.parse_args(argv)
    if args.write_header:
        header_path.parent.mkdir(exist_ok=True)
        header_path.write_text(c_header())
        print(f"wrote {header_path}")
    else:
        sys.stdout.write(c_header())
    return 0
