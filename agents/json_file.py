"""The project's plain JSON files (losses): written at full float precision, read with errors that name the file."""

from __future__ import annotations

import json
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
    """``data`` as indented JSON; floats at ``repr`` precision, so reading it back is bit-exact."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
