"""The Linux OS layer: kernel found through VMCOREINFO, BTF or an ISF; tasks, maps, modules, dmesg.
See docs/linux.md and docs/architecture.md.
"""
