"""``python tests/testbed COMMAND``: prepare the testbed, boot/stop guests, print ground truth, dump memory.

  setup [x86_64|i386|all]           install/fetch what guests need (default all)
  boot KIND [KEY=VALUE ...]         boot a guest (KIND: x64 la57 pae x86 q35); prints its KEY=VALUE facts
  stop NAME                         stop a guest
  truth NAME [groundtruth options]  QEMU's translations as JSON (see testbed/groundtruth.py)
  dump NAME OUT [elf|kdump-zlib]    QEMU's dump-guest-memory
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python tests/testbed`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed import guest, provision  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "setup":
            for k in provision.setup(args[0] if args else "all"):
                print(f"ready: {k}")
            print(f"testbed ready in {provision.HOME}")
        elif cmd == "boot":
            knobs = dict(a.split("=", 1) for a in args[1:])
            g = guest.boot(args[0] if args else "x64", **knobs)
            guest._running.pop(g.name, None)  # outlives this command: stop it with `stop NAME`
            print("".join(f"{k}={v}\n" for k, v in g.info.items()), end="")
        elif cmd == "stop":
            guest.find(args[0]).stop()
            print(f"stopped {args[0]}")
        elif cmd == "truth":
            g = guest.find(args[0])
            print(json.dumps(g.ground_truth(*args[1:]), indent=1))
        elif cmd == "dump":
            g = guest.find(args[0])
            print(g.dump(Path(args[1]), args[2] if len(args) > 2 else "elf"))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (provision.ProvisionError, guest.BootError, FileNotFoundError) as e:
        print(f"testbed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
