"""The hub daemon: node registry, broadcast to subscribers, command relay."""
