"""The project's plain JSON files (losses): written at full float precision, read with errors that name the file;
:func:`plain` makes nested numbers and arrays JSON-ready (experiments' summaries too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_json(path) -> dict:
    """The JSON object in ``path``; ``ValueError`` naming the file when it is missing or not JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"loss file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"loss file {path} is a directory") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"loss file {path}: not UTF-8 text (byte {err.start})") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"loss file {path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"loss file {path}: not a JSON object")
    return data


def write_json(path, data: dict) -> Path:
    """``data`` as indented JSON; floats at ``repr`` precision, so reading it back is bit-exact.  Plain JSON only
    (it has no NaN or infinity): in ``data["provenance"]`` (scores, condition numbers) they are written as null;
    anywhere else, in a loss's coefficients, they are a ``ValueError`` naming the file, and nothing is written."""
    path = Path(path)
    if "provenance" in data:
        data = {**data, "provenance": plain(data["provenance"])}
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"{path}: {err} (a loss's coefficients must be finite)") from None
    path.write_text(text + "\n")
    return path


def plain(value):
    """JSON-ready copy of numbers, arrays and nested containers (NaN and infinity -> None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value
