"""The native OS layer: the running host's own processes through /proc and process_vm_readv.
See docs/live.md and docs/architecture.md.
"""
