"""`connector serve`: the scheduled loop, its HTTP listener (health, metrics, webhooks)."""
