"""Default configuration files (detection thresholds): package data."""
