"""The committed OpenAPI document is the reference server's own, and it is 3.1."""

from __future__ import annotations

import json
from pathlib import Path

from hil.refapi.app import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_matches_the_reference_server() -> None:
    committed = json.loads(DOC.read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "docs/openapi.json is stale: regenerate it with "
        "`.venv/bin/python -m hil.refapi openapi > docs/openapi.json`"
    )


def test_contract_covers_every_device_endpoint() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [
        ("/v1/enrol", "post"),
        ("/v1/devices/{device}/records", "post"),
        ("/v1/blobs/{sha256}", "put"),
        ("/v1/devices/{device}/roster", "get"),
        ("/v1/devices/{device}/heartbeat", "post"),
    ]:
        assert method in paths[path], (path, method)
