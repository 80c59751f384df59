"""anomaly-edge-agent: a drop-in successor to the Amazon Lookout for Vision Edge Agent."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version for the package, the agent component and the CLI: pyproject.toml's.
    __version__ = version("anomaly-edge-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
