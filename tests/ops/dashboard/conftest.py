from tests.ops.inspect.conftest import chromium  # noqa: F401 - the same Debian chromium fixture
