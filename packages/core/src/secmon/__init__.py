"""SecMon: watch the security-relevant state of many Linux servers."""

__version__ = "0.1.0"
