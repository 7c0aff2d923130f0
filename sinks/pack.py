"""The analyst pack (docs/queries.sql): named queries, split on ``-- name: <id>`` headers."""

from __future__ import annotations

import re
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent / "docs" / "queries.sql"
_HEADER = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.M)


def load(path: Path = PACK) -> dict[str, str]:
    """name → SQL text (comments kept, trailing ';' removed)."""
    text = path.read_text()
    heads = list(_HEADER.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        body = text[m.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)].strip()
        out[m[1]] = body.rstrip().removesuffix(";")
    return out
