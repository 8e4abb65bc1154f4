"""SecMon http integration."""

__version__ = "0.1.0"
