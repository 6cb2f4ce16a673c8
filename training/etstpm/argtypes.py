"""argparse value types shared by the command line and the methods' own option groups."""
from __future__ import annotations

import argparse


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v
