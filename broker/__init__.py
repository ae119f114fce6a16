"""Kafka plumbing shared by every process: the embedded broker and client factories."""
