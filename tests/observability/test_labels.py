"""Label sets stay bounded whatever clients send."""

from __future__ import annotations

from claude_proxy.observability.labels import GATEWAY_ROUTES, OTHER, RouteLabels, route_template


def test_paths_become_templates_with_their_ids_replaced() -> None:
    assert route_template("/v1/files/file_011CNha8/content?x=1") == "/v1/files/{id}/content"
    assert route_template("/v1/messages/batches") == "/v1/messages/batches"
    assert route_template("/v1/" + "a/" * 10) == OTHER  # too deep
    assert route_template("/v1/files/" + "x" * 10_000) == OTHER  # too long to look at


def test_a_route_is_a_label_only_once_the_upstream_took_it_and_only_up_to_the_limit() -> None:
    labels = RouteLabels(limit=len(GATEWAY_ROUTES) + 1)
    assert labels("/v1/files") == OTHER  # not yet confirmed
    assert labels("/v1/files", confirmed=True) == "/v1/files"
    assert labels("/v1/files") == "/v1/files"
    assert labels("/v1/skills", confirmed=True) == OTHER  # the limit is reached
    assert labels("/v1/messages") == "/v1/messages"  # the gateway's own routes always are
