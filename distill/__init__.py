"""distill: turn a strong reasoning model into smaller, released ones."""

__version__ = "0.1.0"
