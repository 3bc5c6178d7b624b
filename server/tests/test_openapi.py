"""docs/openapi.yaml documents every API route the app has, with its methods."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML comes with esptool

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_api_route_is_documented(app):
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in spec["paths"].items()
                  for method in item if method != "parameters"}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method))
    assert routes == documented


def test_every_reference_resolves():
    spec = yaml.safe_load(SPEC.read_text())
    text = SPEC.read_text()
    for ref in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in spec["components"][ref[0]], ref
