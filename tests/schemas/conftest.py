"""The MMP delivery samples (copied from the shared samples so the repo is self-contained)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.schemas.fake_registry import FakeRegistry

SAMPLES_DIR = Path(__file__).parent / "samples"


def load_samples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES_DIR.glob("*.json"))]


SAMPLES = load_samples()


def sample_mmp(s: dict[str, Any]) -> str:
    """The configured MMP of a sample: legacy Branch webhooks arrive on a `branch` source."""
    return "branch" if s["mmp"] == "branch_legacy" else s["mmp"]


def wire(s: dict[str, Any]) -> tuple[bytes, str, str | None]:
    """(body bytes, raw query string, content type) as the ingress would see the delivery."""
    body = s.get("body")
    if body is None:
        return b"", s.get("raw_query_string") or "", s.get("content_type")
    raw = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
    return raw, s.get("raw_query_string") or "", s.get("content_type")


@pytest.fixture(params=SAMPLES, ids=[s["sample_id"] for s in SAMPLES])
def sample(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    """A fake Confluent Schema Registry (documented REST API, aiohttp) on a free loopback port."""
    srv = FakeRegistry()
    try:
        yield srv
    finally:
        srv.close()
