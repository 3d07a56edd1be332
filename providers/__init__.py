"""Built-in providers (Stripe, Xero, HubSpot), the provider contract and the registry.

Installed as `connector.providers`: the folder sits at the top of the checkout, as the product
card places it, and `connector/providers` links to it."""
