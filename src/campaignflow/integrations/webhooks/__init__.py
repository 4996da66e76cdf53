"""Inbound webhooks: verifying each provider's scheme, then turning payloads into events."""
