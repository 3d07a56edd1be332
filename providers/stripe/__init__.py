"""Stripe, the payment gateway: customers, invoices, charges, payment intents, refunds, disputes, payouts,
balance transactions and credit notes in; invoices marked paid out of band, sent and voided out.

    providers.stripe:StripeProvider     the entry point (pyproject.toml)
    StripeSettings                      its settings (docs/providers/stripe.md)
"""

from connector.providers.stripe.provider import StripeProvider
from connector.providers.stripe.settings import StripeSettings

__all__ = ["StripeProvider", "StripeSettings"]
