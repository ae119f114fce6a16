"""trackline: real-time order updates from fulfillment and carrier event streams."""

__version__ = "0.1.0"
