"""schemathesis against rag_news.serve's own OpenAPI schema: a real server on 127.0.0.1 (started and
stopped here) over a small index, answered by the packaged SmolLM2 on llama.cpp; bounded examples per
operation (positive and negative ones). Every response must be no server error and conform to the
schema: a documented status code, content type, headers and body."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings as hsettings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,  # noqa: E402
                                               response_schema_conformance, status_code_conformance)

from rag_news import NewsQA, index_urls  # noqa: E402
from rag_news.serve import Service, create_app  # noqa: E402
from servers import LiveServer  # noqa: E402

AUTH = {"Authorization": "Bearer s3cret"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, site_article_urls, cache_dir):
    from conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("schema"), cache_dir, llm_model="smollm2", max_new_tokens=8,
                             today="2026-11-23")
    index_urls(site_article_urls[:3], settings)
    service = Service(NewsQA(settings).warm_up(), queue_size=4, max_generation_s=60)
    with LiveServer(create_app(service, token="s3cret", search_rate=1000, max_body_bytes=16_384)) as live:
        yield schemathesis.openapi.from_url(live.url + "/openapi.json", headers=AUTH)


def test_no_server_error_and_no_schema_violation(api_schema):
    """Each operation, positive and negative examples (12 each, derandomized): every failed check is
    collected with the request that caused it."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    failures, ran = [], {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hsettings(max_examples=12, deadline=None, database=None, derandomize=True,
                       suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                ran[operation.label] = ran.get(operation.label, 0) + 1
                try:
                    case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=120)
                except BaseException as e:  # noqa: BLE001 - collected and shown below (a FailureGroup)
                    failures.append(f"{operation.label} [{mode}]: {type(e).__name__}: {str(e)[:600]}")

            try:
                run()
            except Unsatisfiable:  # no negative example exists for an operation without inputs
                assert mode == GenerationMode.NEGATIVE
    assert set(ran) == {"GET /health", "GET /search", "GET /stories", "POST /ask", "GET /v1/models",
                        "POST /v1/chat/completions", "GET /conversations", "GET /conversations/{conversation_id}",
                        "DELETE /conversations/{conversation_id}"}
    assert all(ran[op] >= 12 for op in ("GET /search", "POST /ask", "POST /v1/chat/completions")), ran
    assert failures == [], "\n\n".join(failures[:6])
