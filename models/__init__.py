"""The pure core of trackline: contracts and rules, no I/O, no clock reads."""
