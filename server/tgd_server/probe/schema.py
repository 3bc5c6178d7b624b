"""Schemathesis on docs/openapi.yaml: generated requests (valid and invalid) to every
REST operation, with each role's token; every answer must not be a 5xx and must be one
the spec documents (status code, content type, JSON schema).

The device-message operation is left to the hostile generator (hostile.py): its
requests need an HMAC the spec cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPEC = Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml"
SKIPPED_OPERATIONS = ("/api/v1/device/messages",)


@dataclass
class SchemaResult:
    requests: int = 0
    server_errors: int = 0
    statuses: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)


class SchemathesisMissing(Exception):
    """schemathesis is a dev dependency: pip install -e '.[dev]'."""


def run(base_url: str, tokens: dict[str, str], examples: int,
        spec: Path = SPEC) -> SchemaResult:
    try:
        import schemathesis
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st
        from schemathesis.checks import not_a_server_error
        from schemathesis.specs.openapi.checks import (
            content_type_conformance,
            response_schema_conformance,
            status_code_conformance,
        )
    except ImportError as exc:
        raise SchemathesisMissing(str(exc)) from None
    from schemathesis.core.failures import Failure, FailureGroup
    from schemathesis.generation import GenerationMode

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    schema = schemathesis.openapi.from_path(str(spec))
    result = SchemaResult()
    roles = sorted(tokens)
    seen: set[str] = set()

    def exerciser(operation, mode):
        strategy = st.tuples(operation.as_strategy(generation_mode=mode), st.sampled_from(roles))

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(drawn=strategy)
        def exercise(drawn) -> None:
            case, role = drawn
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            try:
                response = case.call(base_url=base_url, headers=headers, timeout=30)
            except Exception as exc:  # the request could not be sent or answered
                result.violations.append(f"{operation.label} ({role}): no answer: {exc}")
                return
            result.requests += 1
            status = response.status_code
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status >= 500:
                result.server_errors += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (AssertionError, FailureGroup, Failure) as failure:  # one line each
                text = " ".join(str(failure).split())[:300]
                key = f"{operation.label} {status} {text[:120]}"
                if key not in seen:
                    seen.add(key)
                    result.violations.append(
                        f"{operation.label} ({role}, {mode.value}) -> {status}: {text}")

        return exercise

    for found in schema.get_all_operations():
        operation = found.ok()
        if operation.path in SKIPPED_OPERATIONS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exerciser(operation, mode)()
    return result
