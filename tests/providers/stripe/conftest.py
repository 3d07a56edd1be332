import pytest
import respx

from support.stripe_contract import assert_documented
from support.stripe_fakes import FakeStripe, make_provider


@pytest.fixture
def stripe_fake():
    with respx.mock(assert_all_called=False) as router:
        fake = FakeStripe(router)
        yield fake
    # Every request a test made is one the official document allows (issue 3).
    assert_documented(fake.requests)


@pytest.fixture
def provider():
    p = make_provider()
    yield p
    p.close()
