"""The HubSpot (CRM) provider: `providers.hubspot:HubSpotProvider`.

settings.py   HubSpotSettings: auth forms, limits, property names
search.py     incremental search windows past the 10,000-result ceiling
provider.py   HubSpotProvider: streams and actions
"""

from connector.providers.hubspot.provider import HubSpotProvider
from connector.providers.hubspot.settings import HubSpotSettings

__all__ = ["HubSpotProvider", "HubSpotSettings"]
