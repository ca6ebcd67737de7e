"""Plugin-folder shim: offers the toyos OS layer of the test package (importable from source)."""

from pmf_testplugin.toyos import PLUGIN  # noqa: F401
