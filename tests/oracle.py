"""The pure core's answer for a simulated stream: ``trackline.oracle`` (the chaos run uses it too)."""

from trackline.oracle import expected, expected_notifications

__all__ = ["expected", "expected_notifications"]
