"""anomaly-edge-agent: a drop-in successor to the Amazon Lookout for Vision Edge Agent."""

__version__ = "0.1.0"
