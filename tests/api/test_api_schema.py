"""schemathesis against the generated OpenAPI document: no 5xx, every response as documented.

The operations are driven with hypothesis directly (a bounded number of examples each), with
an admin key, over every GET of /api/v1.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from payouts.domain.roles import Role

# Derandomized: the same examples on every run, so CI never fails by luck; new operations and
# schema changes still change what is generated.
EXAMPLES = 20


def test_get_operations_conform(api_app, keys):  # type: ignore[no-untyped-def]
    api_app.config["PAYOUTS_API_RATE_LIMIT"] = "1000000 per minute"
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    headers = {"Authorization": f"Bearer {keys[Role.ADMIN]}"}
    tested = []
    for result in schema.include(method="GET").get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        check()
        tested.append(operation.label)
    assert len(tested) >= 15, tested


def test_post_operations_never_fail_on_the_server(api_app, keys):  # type: ignore[no-untyped-def]
    """Every write, fed what the schema allows and what it does not: a refusal is fine (4xx in
    the one error shape), a server error never is. Each example carries its own
    Idempotency-Key so no answer is a replay of another."""
    import uuid

    api_app.config["PAYOUTS_API_RATE_LIMIT"] = "1000000 per minute"
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    tested = []
    for result in schema.include(method="POST").get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {keys[Role.STAFF]}", "Idempotency-Key": uuid.uuid4().hex}
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        check()
        tested.append(operation.label)
    assert len(tested) >= 8, tested
