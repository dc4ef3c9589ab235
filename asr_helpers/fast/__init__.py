"""Opt-in speed work: replaced convolutions (``convolutions``), the fast GPU training profile (``training``), int8 CPU inference (``int8``)."""
