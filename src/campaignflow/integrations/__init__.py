"""The integration layer: connectors to providers, and the webhooks they call back."""
