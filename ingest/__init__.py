"""``trackline ingest``: signed webhooks and fulfillment events in over HTTP, onto the broker."""
