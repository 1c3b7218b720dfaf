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


def test_every_reference_in_the_contract_resolves() -> None:
    """A client (or a fuzzer) reading the document must find every ``$ref`` it names: a
    model's own ``$defs`` left inside a request body pointed nowhere."""
    doc = json.loads(json.dumps(openapi_document()))
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: object = doc
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"{ref} does not resolve"
            target = target[part]
