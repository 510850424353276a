"""The payment providers' inbound webhook door: ``POST /api/webhooks/{provider}/{site_id}``."""
