"""A plugin that fails at import time, as a partner's typo would."""

import a_module_that_does_not_exist  # noqa: F401
