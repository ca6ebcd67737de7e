#!/usr/bin/env python3
"""Generate src/pymemflow/os/win32/net/data/tcpip_layouts.json: where tcpip.sys keeps the fields of its
TCP endpoints (pool tag TcpE), TCP listeners (TcpL) and UDP endpoints (UdpA), per Windows build.

Microsoft's public tcpip PDBs carry symbols only, no types, so these layouts are facts reverse-engineered
per build. The facts are read from the per-build layout files that volatility3 ships
(``volatility3/framework/symbols/windows/netscan/*.json``, Volatility Software License 1.0) in the installed
volatility3 package; this script keeps only the offsets the reader needs, in pymemflow's own form (address
fields become *pointer paths*), never the files themselves. Run it after upgrading volatility3:

    python scripts/gen_tcpip_layouts.py            # writes the table
    python scripts/gen_tcpip_layouts.py --check    # exit 1 when the table is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/pymemflow/os/win32/net/data/tcpip_layouts.json"

# Which layout each Windows build uses (facts: the tcpip.sys shipped with that build). Keys: arch, NT major,
# minor, build, lowest tcpip.sys revision (0: any). Builds 19042-19045 are 19041 with enablement packages
# (the same tcpip.sys line), so they map to the 19041 layout.
BUILDS: list[tuple[str, int, int, int, int, str]] = [
    ("x86", 6, 0, 6000, 0, "vista-x86"), ("x86", 6, 0, 6001, 0, "vista-x86"), ("x86", 6, 0, 6002, 0, "vista-x86"),
    ("x86", 6, 0, 6003, 0, "vista-x86"), ("x86", 6, 1, 7600, 0, "win7-x86"), ("x86", 6, 1, 7601, 0, "win7-x86"),
    ("x86", 6, 1, 8400, 0, "win7-x86"), ("x86", 6, 2, 9200, 0, "win8-x86"), ("x86", 6, 3, 9600, 0, "win81-x86"),
    ("x86", 10, 0, 10240, 0, "win10-10240-x86"), ("x86", 10, 0, 10586, 0, "win10-10586-x86"),
    ("x86", 10, 0, 14393, 0, "win10-14393-x86"), ("x86", 10, 0, 15063, 0, "win10-15063-x86"),
    ("x86", 10, 0, 16299, 0, "win10-15063-x86"), ("x86", 10, 0, 17134, 0, "win10-17134-x86"),
    ("x86", 10, 0, 17763, 0, "win10-17134-x86"), ("x86", 10, 0, 18362, 0, "win10-17134-x86"),
    ("x86", 10, 0, 18363, 0, "win10-17134-x86"), ("x86", 10, 0, 19041, 0, "win10-19041-x86"),
    ("x64", 6, 0, 6000, 0, "vista-x64"), ("x64", 6, 0, 6001, 0, "vista-sp12-x64"),
    ("x64", 6, 0, 6002, 0, "vista-sp12-x64"), ("x64", 6, 0, 6003, 0, "vista-sp12-x64"),
    ("x64", 6, 1, 7600, 0, "win7-x64"), ("x64", 6, 1, 7601, 0, "win7-x64"), ("x64", 6, 1, 8400, 0, "win7-x64"),
    ("x64", 6, 2, 9200, 0, "win8-x64"), ("x64", 6, 3, 9600, 0, "win81-x64"),
    ("x64", 6, 3, 9600, 19935, "win81-19935-x64"), ("x64", 10, 0, 10240, 0, "win10-x64"),
    ("x64", 10, 0, 10586, 0, "win10-x64"), ("x64", 10, 0, 14393, 0, "win10-x64"),
    ("x64", 10, 0, 15063, 0, "win10-15063-x64"), ("x64", 10, 0, 16299, 0, "win10-16299-x64"),
    ("x64", 10, 0, 17134, 0, "win10-17134-x64"), ("x64", 10, 0, 17763, 0, "win10-17763-x64"),
    ("x64", 10, 0, 18362, 0, "win10-18362-x64"), ("x64", 10, 0, 18363, 0, "win10-18363-x64"),
    ("x64", 10, 0, 19041, 0, "win10-19041-x64"), ("x64", 10, 0, 19042, 0, "win10-19041-x64"),
    ("x64", 10, 0, 19043, 0, "win10-19041-x64"), ("x64", 10, 0, 19044, 0, "win10-19041-x64"),
    ("x64", 10, 0, 19045, 0, "win10-19041-x64"), ("x64", 10, 0, 20348, 0, "win10-20348-x64"),
]

OBJECTS = {"tcp_endpoint": "_TCP_ENDPOINT", "tcp_listener": "_TCP_LISTENER", "udp_endpoint": "_UDP_ENDPOINT"}
SCALARS = {"InetAF": "inet_af", "Owner": "owner", "CreateTime": "create_time", "State": "state",
           "LocalPort": "local_port", "RemotePort": "remote_port", "Port": "port"}


def pointer_path(types: dict[str, Any], offset: int, t: dict[str, Any], member: str | None = None) -> list[int]:
    """Offsets to follow from the object to the _IN_ADDR: read a pointer at object+path[0], then at
    that+path[1] ... the last pointer read is the address of the _IN_ADDR."""
    path = [offset]
    t = t["subtype"]
    for _ in range(8):
        if t.get("kind") == "pointer":
            path.append(0)
            t = t["subtype"]
            continue
        name = t.get("name", "")
        if name == "_IN_ADDR":
            return path
        fields = types[name]["fields"]
        f = fields[member] if member and member in fields else fields["pData"]
        member = None
        if f["type"].get("kind") != "pointer":
            raise ValueError(f"{name}: {f} is no pointer")
        path.append(f["offset"])
        t = f["type"]["subtype"]
    raise ValueError(f"pointer path too deep at {offset}")


def layout(doc: dict[str, Any]) -> dict[str, Any]:
    types = doc["user_types"]
    out: dict[str, Any] = {"pointer": doc["base_types"]["pointer"]["size"],
                           "inet_af_family": types["_INETAF"]["fields"]["AddressFamily"]["offset"]}
    for key, tname in OBJECTS.items():
        st = types[tname]
        rec: dict[str, Any] = {"size": st["size"]}
        for m, f in st["fields"].items():
            if m in SCALARS:
                rec[SCALARS[m]] = f["offset"]
        if "AddrInfo" in st["fields"]:
            f = st["fields"]["AddrInfo"]
            rec["local_addr"] = pointer_path(types, f["offset"], f["type"], "Local")
            rec["remote_addr"] = pointer_path(types, f["offset"], f["type"], "Remote")
        if "LocalAddr" in st["fields"]:
            f = st["fields"]["LocalAddr"]
            rec["local_addr"] = pointer_path(types, f["offset"], f["type"])
        out[key] = rec
    out["tcp_states"] = {str(v): k for k, v in doc["enums"]["TCPStateEnum"]["constants"].items()}
    return out


def generate() -> dict[str, Any]:
    from importlib import metadata

    import volatility3

    folder = Path(volatility3.__file__).parent / "framework/symbols/windows/netscan"
    layouts = {}
    for p in sorted(folder.glob("netscan-*.json")):
        layouts[p.stem.removeprefix("netscan-")] = layout(json.loads(p.read_text()))
    missing = {b[-1] for b in BUILDS} - set(layouts)
    if missing:
        raise SystemExit(f"layouts named in BUILDS but not in {folder}: {sorted(missing)}")
    return {
        "_about": "tcpip.sys endpoint layouts per Windows build, generated by scripts/gen_tcpip_layouts.py; "
                  "facts read from volatility3's netscan layout files (framework/symbols/windows/netscan, "
                  f"volatility3 {metadata.version('volatility3')}, Volatility Software License 1.0): offsets only, "
                  "the files are not carried",
        "layouts": layouts,
        "builds": [{"arch": a, "major": ma, "minor": mi, "build": b, "revision": r, "layout": lay}
                   for a, ma, mi, b, r, lay in BUILDS],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the table in the tree")
    args = ap.parse_args()
    text = json.dumps(generate(), indent=1, sort_keys=True) + "\n"
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("up to date" if same else f"{OUT} differs from a fresh generation")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
