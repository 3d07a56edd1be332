import pytest
import respx

from stripe_fakes import FakeStripe, make_provider


@pytest.fixture
def stripe_fake():
    with respx.mock(assert_all_called=False) as router:
        yield FakeStripe(router)


@pytest.fixture
def provider():
    p = make_provider()
    yield p
    p.close()
