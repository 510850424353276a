"""Visitor tracking: attribution helpers (User-Agent, GeoIP, referrer, client IP)."""
