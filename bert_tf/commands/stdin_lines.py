"""Input lines for the commands that read text from stdin or a plain text file (`predict
--format lines`, `embed --data -`): undecoded bytes first, so that invalid UTF-8 is one error that
names its line instead of a decoder traceback."""

from __future__ import annotations

import sys


def decode_lines(data: bytes, source: str) -> list:
    """Input lines from raw bytes; invalid UTF-8 is one error naming `source` and the line."""
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{source} line {number}: not valid UTF-8 (byte "
                             f"0x{line[e.start]:02x} at column {e.start + 1})") from None
    return [line.decode("utf-8") for line in lines]


def stdin_bytes() -> bytes:
    """stdin undecoded (a replaced, text-only stdin is already decoded: encoded back)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")
