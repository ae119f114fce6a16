"""The ClickHouse sink: schema and the batched, commit-after-insert writer."""
