"""An unexpected failure is a 500 envelope with the usual headers, never a stack trace."""

from __future__ import annotations

import httpx
import pytest

from datasaas.resolvers import revenue
from datasaas.resolvers.sites import IssuedKey
from tests.factories import bearer


async def test_unexpected_error_is_a_clean_500(
    client: httpx.AsyncClient, key: IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals: /srv/app/db.py line 12")

    monkeypatch.setattr(revenue, "revenue_summary", broken)
    response = await client.get("/api/v1/revenue?site_id=ds_test", headers=bearer(key))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "Internal server error."}
    }
    assert "secret internals" not in response.text
    assert response.headers["RateLimit-Limit"] == "600"
    assert "RateLimit-Remaining" in response.headers
