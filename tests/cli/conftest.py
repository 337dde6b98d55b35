import pytest
import structlog
from click.testing import CliRunner

from valueguard.cli import cli


@pytest.fixture()
def run(tmp_path, monkeypatch):
    """Invoke the CLI quietly with a data directory of the test's own."""
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "data"))

    def invoke(*args):
        return CliRunner().invoke(cli, ["--quiet", *map(str, args)], catch_exceptions=False)

    yield invoke
    structlog.reset_defaults()  # the CLI configures structlog for its process; tests after it need the defaults
