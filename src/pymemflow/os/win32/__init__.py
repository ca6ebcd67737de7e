"""The Windows OS layer: discovery from bare physical memory, processes, modules, VADs, keyboard.
See docs/windows.md and docs/architecture.md.
"""
