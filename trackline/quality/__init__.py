"""make quality: trackline measured against a simulated world that knows what really happened (issue 13)."""
