"""The tracker door: ``POST /api/events`` and ``GET /js/script.js`` (public, CORS-open)."""
