"""The local web workbench (`connector ui`, `connector serve --ui`): the aging chart, DSO, the
open proposals to decide, customers, parked actions and drift, on pages served by the
connector alone and behind a token (see `access`)."""

from connector.workbench.access import MIN_TOKEN, Access, loopback_hosts, new_token
from connector.workbench.app import workbench
from connector.workbench.book import Book

__all__ = ["MIN_TOKEN", "Access", "Book", "loopback_hosts", "new_token", "workbench"]
