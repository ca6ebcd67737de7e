"""Shared helpers for live targets: process memory I/O, /proc readers, QMP, QEMU RAM location."""
