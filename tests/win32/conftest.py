from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from typing import Any

import pytest
from win32_util import phys_of


@pytest.fixture(scope="session", params=["win10", "win7"])
def machine(request: Any, win10_image: Any, win7_image: Any) -> tuple[Any, Any]:
    """(image, Win32Kernel found with no hints) for each synthetic profile."""
    from pymemflow.os.win32.kernel import Win32Kernel

    img = win10_image if request.param == "win10" else win7_image
    return img, Win32Kernel.open(phys_of(img), progress=False)


@pytest.fixture(scope="session")
def win10_image() -> Any:
    from pymemflow.demo.machine import build_image

    return build_image("win10-19041-x64", seed=0)


@pytest.fixture(scope="session")
def win7_image() -> Any:
    from pymemflow.demo.machine import build_image

    return build_image("win7-7601-x86pae", seed=0)


@pytest.fixture(scope="session")
def pe_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PE files linked here by clang + lld-link (tests/win32/pe_build.py): ``<arch>/<name>``."""
    from pe_build import build_all, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install clang lld (builds the PE test files)")
    out = tmp_path_factory.mktemp("pe")
    build_all(out)
    return out
