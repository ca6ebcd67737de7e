"""Modules that hold the built-in plugins (each defines ``PLUGIN`` or ``PLUGINS``).

A module listed here that fails to import is skipped with a warning (shown with ``-v``), so one
broken optional plugin (a missing extra, say) never takes the others down.
"""

BUILTIN_MODULES: list[str] = [
    # connectors: files and in-process memory
    "pymemflow.connectors.raw",
    "pymemflow.connectors.dummy",
    # connectors: dump formats and auto-detection
    "pymemflow.connectors.elf",
    "pymemflow.connectors.kdump",
    "pymemflow.connectors.crashdump",
    "pymemflow.connectors.lime",
    "pymemflow.connectors.avml",
    "pymemflow.connectors.vmware",
    "pymemflow.connectors.auto",
    # connectors: live targets
    "pymemflow.connectors.qemu",
    "pymemflow.connectors.kcore",
    "pymemflow.connectors.leechcore",
    # connectors: through a `pymemflow serve` daemon
    "pymemflow.connectors.remote",
    # connectors: built-in demo machines (the synthetic Windows machines, pymemflow.demo)
    "pymemflow.demo.connector",
    # OS layers
    "pymemflow.os.win32.plugin",
    "pymemflow.os.linux.plugin",
    "pymemflow.os.native.plugin",
    "pymemflow.os.remote.plugin",
]

ALONE: dict[tuple[str, str], str] = {
    ("connector", "raw"): "pymemflow.connectors.raw",
    ("connector", "dummy"): "pymemflow.connectors.dummy",
    ("connector", "elf"): "pymemflow.connectors.elf",
    ("connector", "kdump"): "pymemflow.connectors.kdump",
    ("connector", "crashdump"): "pymemflow.connectors.crashdump",
    ("connector", "lime"): "pymemflow.connectors.lime",
    ("connector", "avml"): "pymemflow.connectors.avml",
    ("connector", "vmware"): "pymemflow.connectors.vmware",
    ("connector", "auto"): "pymemflow.connectors.auto",
    ("connector", "qemu"): "pymemflow.connectors.qemu",
    ("connector", "kcore"): "pymemflow.connectors.kcore",
    ("connector", "leechcore"): "pymemflow.connectors.leechcore",
    ("connector", "remote"): "pymemflow.connectors.remote",
    ("connector", "demo"): "pymemflow.demo.connector",
    ("os", "win32"): "pymemflow.os.win32.plugin",
    ("os", "linux"): "pymemflow.os.linux.plugin",
    ("os", "native"): "pymemflow.os.native.plugin",
    ("os", "remote"): "pymemflow.os.remote.plugin",
}
"""Built-in plugins a chain may load without scanning every other source (``inventory_for``):
built-ins win over entry points and plugin folders, so for these names the full scan could not give
anything else. A chain naming only these imports only their modules: ``pymemflow -c raw:IMG -o win32
ps`` does not import the demo machine, the live connectors or the Linux layer, and the daemon's thin
clients (``pymemflow -o remote:... ps``) do not import NumPy. tests/serve check each entry against the full scan."""
