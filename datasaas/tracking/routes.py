"""Tracker-side routes: ``POST /api/events`` and ``GET /js/script.js``."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
