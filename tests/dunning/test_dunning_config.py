"""The `[dunning]` table: per-connection and per-customer policies, and clear errors."""

from __future__ import annotations

import pytest

from connector.config import Config
from connector.dunning.run import dunning_section, policy_chooser
from connector.errors import ConfigError
from connector.model import Customer, Ref


def config(dunning):
    return Config(path=None, database_url="sqlite://", connections={}, dunning=dunning)


def customer(name, *systems):
    return Customer(
        id=name.lower(),
        name=name,
        refs=[Ref(system=s, object_type="customer", remote_id=f"{s}-{name}") for s in systems],
    )


def test_the_most_specific_policy_wins_customer_then_connection_then_default():
    section = dunning_section(
        config(
            {
                "steps": [{"days": 1, "tone": "reminder", "channel": "ledger_email"}],
                "connections": {"ledger_eu": {"steps": [{"days": 10, "tone": "reminder", "channel": "ledger_email"}]}},
                "customers": {"Acme": {"steps": [{"days": 20, "tone": "firm", "channel": "crm_task"}]}},
            }
        )
    )
    choose = policy_chooser(section)
    assert [s.days for s in choose(customer("Acme", "ledger_eu")).steps] == [20]
    assert [s.days for s in choose(customer("Globex", "ledger_eu")).steps] == [10]
    assert [s.days for s in choose(customer("Initech", "ledger_us")).steps] == [1]


@pytest.mark.parametrize(
    ("dunning", "message"),
    [
        ({"stepz": []}, "dunning.stepz: unknown key"),
        ({"steps": [{"days": 1, "tone": "x", "channel": "fax"}]}, "dunning.steps"),
        (
            {
                "connections": {
                    "ledger": {
                        "steps": [
                            {"days": 1, "tone": "x", "channel": "ledger_email"},
                            {"days": 1, "tone": "y", "channel": "ledger_email"},
                        ]
                    }
                }
            },
            "appears twice",
        ),
    ],
)
def test_a_bad_dunning_table_is_one_clear_config_error(dunning, message):
    with pytest.raises(ConfigError, match=message):
        dunning_section(config(dunning))
