"""The machines we can build (kernel build, PDB identity) and Windows ABI constants they use."""

from __future__ import annotations

from dataclasses import dataclass

from ..os.win32.offsets import table


@dataclass(frozen=True)
class Profile:
    name: str
    arch: str
    guid_age: str
    pdb_name: str
    version: str
    build: int
    major: int
    minor: int
    default_size: int


PROFILES: dict[str, Profile] = {
    "win10-19041-x64": Profile("win10-19041-x64", "x64", "5278AFF86C341677D7D7835C85B7B8441", "ntkrnlmp.pdb",
                               "10.0.19041.804", 19041, 10, 0, 1 << 30),
    # x64 builds from Windows 7 to 11, each at its own kernel's offsets (built-in table, generated from the
    # JPCERT ISFs carried in tests/data/windows/isf-forensic: the same GUID+age)
    "win7-7601-x64": Profile("win7-7601-x64", "x64", "339E74133576439CBCDF7E0229DA37731", "ntkrnlmp.pdb",
                             "6.1.7601.24540", 7601, 6, 1, 1 << 30),
    "win81-9600-x64": Profile("win81-9600-x64", "x64", "22597D0B40394E23936F6A24C6C52D5B1", "ntkrnlmp.pdb",
                              "6.3.9600.19913", 9600, 6, 3, 1 << 30),
    "win10-14393-x64": Profile("win10-14393-x64", "x64", "517E128F7B7C4EA79491DE6B9B9CE1901", "ntkrnlmp.pdb",
                               "10.0.14393.4583", 14393, 10, 0, 1 << 30),
    "win10-17763-x64": Profile("win10-17763-x64", "x64", "8B11040A5928757B11390AC78F6B69251", "ntkrnlmp.pdb",
                               "10.0.17763.379", 17763, 10, 0, 1 << 30),
    "win10-18362-x64": Profile("win10-18362-x64", "x64", "11BC9A513F1140CA359ECDF50F0122C11", "ntkrnlmp.pdb",
                               "10.0.18362.295", 18362, 10, 0, 1 << 30),
    "win2022-20348-x64": Profile("win2022-20348-x64", "x64", "C2EADB24A615E9472CE47C8ADD31F1301", "ntkrnlmp.pdb",
                                 "10.0.20348.288", 20348, 10, 0, 1 << 30),
    "win11-22000-x64": Profile("win11-22000-x64", "x64", "0CE4A95C0CD782A7596B034D8648E5851", "ntkrnlmp.pdb",
                               "10.0.22000.2538", 22000, 10, 0, 1 << 30),
    "win7-7601-x86pae": Profile("win7-7601-x86pae", "x86pae", "684DA42A30CC450F81C535B4D18944B12",
                                "ntkrpamp.pdb", "6.1.7601", 7601, 6, 1, 512 << 20),
    # Windows 7 SP1 x86 without PAE (ntkrnlmp.pdb, 2-level page tables, 4-byte PTEs). Independent facts:
    # every struct layout and the software-PTE bits (Volatility 2's Windows 7 SP1 x86 vtypes, which are
    # this kernel's). Synthetic: the PDB GUID below (none is in the data; the layer finds the table's
    # x86 7601 entry by build) and the symbol RVAs (X86_SYMBOLS, shared with the PAE profile).
    "win7-7601-x86": Profile("win7-7601-x86", "x86", "5E7E7A1C86000000000000000076010A1", "ntkrnlmp.pdb",
                             "6.1.7601", 7601, 6, 1, 256 << 20),
}
ALIASES = {"win10": "win10-19041-x64", "win7": "win7-7601-x86pae", "win7x64": "win7-7601-x64",
           "win81": "win81-9600-x64", "win1607": "win10-14393-x64", "win1809": "win10-17763-x64",
           "win1903": "win10-18362-x64", "win2022": "win2022-20348-x64", "win11": "win11-22000-x64"}



def table_profile(guid_age: str) -> Profile:
    """A machine of any x64 kernel in the built-in offsets table (213 builds, Windows 7 SP1 .. 11), by PDB
    GUID+age: ``build_image(table_profile("0CE4...5851"))``. The named profiles above are a selection."""
    e = table.lookup_guid(guid_age, "x64")
    if e is None:
        raise ValueError(f"{guid_age} is not an x64 kernel of the built-in offsets table")
    major, minor = (int(x) for x in e.version.split(".")[:2])
    return Profile(f"x64-{e.version}-{e.guid_age}", "x64", e.guid_age, e.pdb_name, e.version, e.build, major,
                   minor, 1 << 30)


# Symbol RVAs of our x86 7601 kernel: no PDB/ISF for ntkrpamp 7601 is carried here, so this
# layout is synthetic (recorded in facts["symbols"]); the exported ones are found through exports.
X86_SYMBOLS = {"PsActiveProcessHead": 0x31F0C8, "PsLoadedModuleList": 0x31F850, "PsInitialSystemProcess": 0x357B38,
               "NtBuildNumber": 0x300D7C, "KdVersionBlock": 0x2FDA18, "MmPhysicalMemoryBlock": 0x31A6E8,
               "KiSystemStartup": 0x0E0E40, "KeNumberProcessors": 0x357B40, "MmProtectToValue": 0x2F1A40,
               "ObTypeIndexTable": 0x2F8F00}
# MM_* protection index -> PAGE_* value (Windows ABI; 8 base values, then NOCACHE, GUARD, WRITECOMBINE)
_PAGE_BASE = (0x01, 0x02, 0x10, 0x20, 0x04, 0x08, 0x40, 0x80)
MM_PROTECT_TO_VALUE = [v if i % 8 == 0 else v | m for m, start in ((0, 0), (0x200, 8), (0x100, 16), (0x400, 24))
                       for i, v in zip(range(start, start + 8), _PAGE_BASE, strict=True)]
KERNEL_EXPORTS = ("PsInitialSystemProcess", "PsLoadedModuleList", "NtBuildNumber", "KeNumberProcessors")

STATUS_PENDING = 0x103
FILETIME_2021 = 132_600_000_000_000_000  # 2021-03-11 in 100 ns units since 1601

MM_READONLY, MM_EXECUTE_READ, MM_READWRITE, MM_EXECUTE_WRITECOPY = 1, 3, 4, 7
VAD_NONE, VAD_IMAGE = 0, 2

# ObTypeIndexTable: index -> object type name (0 unused, 1 a bad-pointer marker, as Windows 7 .. 10)
OBJECT_TYPES = ("Type", "Directory", "SymbolicLink", "Token", "Job", "Process", "Thread",
                "Event", "Mutant", "Section", "File", "Device", "Key")  # the last six: demo/handles.py
PROCESS_TYPE_INDEX = 2 + OBJECT_TYPES.index("Process")
