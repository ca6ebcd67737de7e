"""Connectors: physical memory from raw images, dump formats (``formats/`` holds what they share),
QEMU/KVM guests, /proc/kcore and LeechCore devices. Each module declares ``PLUGIN``; they import
``mem`` and ``live`` only. See docs/formats.md, docs/live.md and docs/architecture.md.
"""
