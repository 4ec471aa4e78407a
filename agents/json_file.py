"""The project's plain JSON files (losses): written at full float precision, read with errors that name the file."""

from __future__ import annotations

import json
import math
from pathlib import Path


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
        data = {**data, "provenance": _finite_or_null(data["provenance"])}
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"{path}: {err} (a loss's coefficients must be finite)") from None
    path.write_text(text + "\n")
    return path


def _finite_or_null(value):
    """``value`` with every NaN or infinite float (in nested dicts and lists) replaced by None."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
