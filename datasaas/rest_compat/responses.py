"""JSON responses that render Decimals as exact JSON numbers (``24500.00``, not ``24500.0``)."""

from __future__ import annotations

from typing import Any

import simplejson
from fastapi.responses import JSONResponse


class DecimalJSONResponse(JSONResponse):
    """A JSONResponse whose Decimals keep their exact digits."""

    def render(self, content: Any) -> bytes:
        return simplejson.dumps(
            content, use_decimal=True, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
