"""The Faust worker: topics, tables and the agents that feed the pure core."""
