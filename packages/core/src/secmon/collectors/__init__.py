"""The node's eyes: pure parsers for sessions, WireGuard and auth logs, and the sources that feed them."""
