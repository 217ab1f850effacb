"""Small focused helpers: one job per module."""
