"""Several hubs as one cluster through a real NATS JetStream server."""
