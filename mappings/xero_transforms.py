"""Xero transforms that are more than a field path (imported by `mappings/xero.toml`)."""

from __future__ import annotations

from typing import Any

from connector.mappings.transforms import TransformContext, transform


@transform("xero_deleted")
def _deleted(value: Any, ctx: TransformContext) -> bool:
    """True for a record Xero reports as DELETED (a removed payment is gone, not failed)."""
    return str(value).upper() == "DELETED"


@transform("xero_contact_emails")
def _contact_emails(value: Any, ctx: TransformContext) -> list[str]:
    """The contact's own address, then those of its contact persons who get invoice emails
    (`IncludeInEmails`), without repeats. `value` is the contact itself (path ".")."""
    if not isinstance(value, dict):
        raise ValueError('xero_contact_emails needs the whole contact (path ".")')
    found = [value.get("EmailAddress")]
    for person in value.get("ContactPersons") or []:
        if isinstance(person, dict) and person.get("IncludeInEmails"):
            found.append(person.get("EmailAddress"))
    emails = (str(email).strip() for email in found if email)
    return list(dict.fromkeys(email for email in emails if email))


@transform("xero_contact_groups")
def _contact_groups(value: Any, ctx: TransformContext) -> list[str]:
    """The names of the contact's groups (`ContactGroups`), sorted, without the deleted ones."""
    if not isinstance(value, list):
        return []
    names = {
        str(group.get("Name")).strip()
        for group in value
        if isinstance(group, dict) and group.get("Name") and group.get("Status", "ACTIVE") != "DELETED"
    }
    return sorted(name for name in names if name)


@transform("xero_payment_terms_days")
def _payment_terms_days(value: Any, ctx: TransformContext) -> int | None:
    """Sales terms "N days after the invoice date" as N; month-based terms have no day count
    (None: the field is left empty)."""
    if not isinstance(value, dict) or value.get("Type") != "DAYSAFTERBILLDATE":
        return None
    day = value.get("Day")
    return int(day) if isinstance(day, int) and not isinstance(day, bool) else None


@transform("xero_allocated_invoices")
def _allocated_invoices(value: Any, ctx: TransformContext) -> list[str]:
    """The InvoiceIDs a credit note is allocated to (a linking hint)."""
    if not isinstance(value, list):
        return []
    ids = (a.get("Invoice", {}).get("InvoiceID") for a in value if isinstance(a, dict))
    return [str(i) for i in ids if i]
