"""Every error pymemflow raises on purpose derives from :class:`PymemflowError`.

The CLI maps these to a one-line message and exit code 1 (2 for :class:`ArgumentError`).
"""

from __future__ import annotations

from .records import FrozenRecord


class PymemflowError(Exception):
    """Base of all deliberate pymemflow errors."""


class ReadFailure(FrozenRecord):
    """One failed part of a batched read or write.

    ``index`` is the position of the piece in the request, ``address`` the first address that failed
    and ``length`` how many bytes from there failed. A piece can fail in several parts.
    """

    __slots__ = ("index", "address", "length", "reason")
    index: int
    address: int
    length: int
    reason: str

    def __init__(self, index: int, address: int, length: int, reason: str) -> None:
        self._init(index=index, address=address, length=length, reason=reason)

    def __str__(self) -> str:
        return f"piece {self.index}: {self.length:#x} bytes at {self.address:#x}: {self.reason}"


class PartialReadError(PymemflowError):
    """A read where some bytes could not be read.

    ``data`` holds everything that was read, with failed bytes zeroed; ``failures`` says what failed.
    """

    def __init__(self, data: bytes | bytearray, failures: list[ReadFailure], what: str = "read") -> None:
        self.data = bytes(data)
        self.failures = list(failures)
        shown = "; ".join(str(f) for f in self.failures[:3])
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        super().__init__(f"partial {what}: {shown}{more}")


class PartialWriteError(PymemflowError):
    def __init__(self, failures: list[ReadFailure]) -> None:
        self.failures = list(failures)
        super().__init__("partial write: " + "; ".join(str(f) for f in self.failures[:3]))


class ReadOnlyError(PymemflowError):
    """A write to a target that was not opened writable."""


class FormatError(PymemflowError):
    """A file or in-memory structure is malformed. Names the file, the offset and the field."""

    def __init__(self, path: object, offset: int | None, field: str, message: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.field = field
        where = f" at offset {offset:#x}" if offset is not None else ""
        super().__init__(f"{self.path}{where}: {field}: {message}")


class ArgumentError(PymemflowError):
    """Bad plugin argument, unknown key, missing required argument or bad command-line usage."""


class RangeError(ArgumentError, ValueError):
    """A number outside what is allowed: an address or length outside ``0 .. 2**64-1``, a read far
    larger than the target, a size a plugin cannot honour. Also a ``ValueError``, so code written
    against plain Python errors keeps working."""


class PluginError(PymemflowError):
    """A plugin could not be found, loaded or opened."""


class TranslationError(PymemflowError):
    """A virtual address could not be translated."""

    def __init__(self, address: int, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot translate {address:#x}: {reason}")


class OsLayerError(PymemflowError):
    """An OS layer could not find or walk what it was asked for (not the builtin ``OSError``)."""


class NotFoundError(PymemflowError):
    """A process, module, export or symbol that does not exist."""


class PymemflowWarning(UserWarning):
    """Base of pymemflow's warnings: a result is usable but not everything could be read."""


class IncompleteWalkWarning(PymemflowWarning):
    """A list or tree walk stopped early (bad link, loop, cap); the result holds what was read."""


class CappedSizeWarning(PymemflowWarning):
    """A size read from the target was implausible or larger than what the target maps; it was cut."""


class DegradedWarning(PymemflowWarning):
    """Part of the target's metadata (symbols, types) is damaged; the layer works with the rest."""


class ImplausibleResultWarning(PymemflowWarning):
    """A result no real target produces (every parent pid 0, no readable VAD ...), or offsets that lack
    fields the layer reads: the offsets in use are probably wrong for this target."""


class DeclaredSizeWarning(PymemflowWarning):
    """A target declares far more memory than it stores (a corrupt or hostile header)."""
