"""The node daemon: collectors, the hub link, and allowed commands."""
