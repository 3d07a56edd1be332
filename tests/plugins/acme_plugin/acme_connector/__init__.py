"""A partner's ledger provider, as small as the contract allows (used by the registry tests)."""

from collections.abc import Iterator

from pydantic import SecretStr

from connector.plugin import ActionResult, Page, Provider, ProviderSettings


class AcmeSettings(ProviderSettings):
    api_key: SecretStr


class AcmeLedger(Provider):
    name = "acme"
    kind = "ledger"
    settings_model = AcmeSettings
    streams = ("invoices",)
    actions = ("record_payment",)

    def read_invoices(self, cursor: str | None) -> Iterator[Page]:
        yield Page(stream="invoices", records=[], cursor=cursor)

    def apply_record_payment(self, action) -> ActionResult:
        return ActionResult(remote_id=None)
