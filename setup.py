"""Build configuration beyond pyproject.toml: the optional compiled fast path (pymemflow.mem._speedups).

``optional=True``: when the extension cannot be built (no compiler, no Python headers) setuptools warns and
installs the pure-Python package, which reads the same bytes (tests/core/test_speedups.py checks both).
Plain C against the CPython API, not Cython or cffi: no build dependency beyond gcc and the headers (see
the comment at the top of src/pymemflow/mem/_speedups.c).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pymemflow.mem._speedups",
            ["src/pymemflow/mem/_speedups.c", "src/pymemflow/mem/_parcopy.c"],
            depends=["src/pymemflow/mem/_parcopy.h"],
            optional=True,
            extra_compile_args=["-O2"],
            extra_link_args=["-pthread"],
        )
    ]
)
