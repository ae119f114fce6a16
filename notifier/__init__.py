"""The reference notification worker: consumes commands, delivers them once."""
