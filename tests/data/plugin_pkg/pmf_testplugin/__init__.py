"""Out-of-tree test plugins for pymemflow (installed by the test suite)."""
