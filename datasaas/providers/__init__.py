"""Native payment providers: Stripe, LemonSqueezy and Polar webhooks become attributed payments.

Each provider module is pure: it verifies a raw body against its signing secret with the
provider's own scheme (and library, where there is one) and reads the verified event into a
:class:`ProviderEvent`. ``datasaas.resolvers.providers`` applies it through the same payment
resolver as ``POST /api/v1/payments``; ``datasaas.inbound`` is the HTTP door.
"""
