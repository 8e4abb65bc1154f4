"""SecMon telegram integration."""

__version__ = "0.1.0"
