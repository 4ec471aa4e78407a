"""Argument types and checks shared by the ``mld`` commands."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agents.validation import non_negative, positive


def writable_directory(path) -> Path:
    """``path`` created if needed, or ``ValueError`` naming it when it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {path}: cannot write there ({err.strerror})") from None
    return path


def path_and_frame(text: str | None) -> tuple[str | None, int | None]:
    """``PATH[:FRAME]`` -> (path, frame); no frame -> (path, None), meaning the last frame."""
    if text is None:
        return None, None
    path, separator, frame = text.rpartition(":")
    if separator and path and frame.lstrip("-").isdigit():
        return path, int(frame)
    return text, None


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        return non_negative("value", text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}") from None


def positive_float(text: str) -> float:
    """An argparse type: a positive, finite number."""
    try:
        return positive("value", text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}") from None
