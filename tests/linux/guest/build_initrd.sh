#!/bin/bash
# Build an initramfs = the testbed's own initramfs + a second cpio archive whose /init is the testbed
# init with tests/linux/guest/extra_init.sh inserted before TESTBED_READY (the kernel unpacks
# concatenated archives in order, later files replace earlier ones). ../shared stays untouched.
# Usage: build_initrd.sh x86_64|i386 -> prints the path of the initramfs.
set -euo pipefail
ARCH=${1:-x86_64}
HERE=$(cd "$(dirname "$0")" && pwd)
TB=${TESTBEDS:-$(cd "$HERE/../../../../shared/testbeds" && pwd)}
W=${TESTBED_HOME:-$HOME/.cache/pymemflow-testbed}
BASE=$W/build/initramfs-$ARCH.cpio.gz
[ -f "$BASE" ] || "$TB/build_initramfs.sh" "$ARCH" >&2
OUT=$W/build/pmf-linux-initramfs-$ARCH.cpio.gz
ROOT=$(mktemp -d); trap 'rm -rf "$ROOT"' EXIT
awk -v extra="$HERE/extra_init.sh" '/^echo "TESTBED_READY/ { while ((getline l < extra) > 0) print l } { print }' \
  "$TB/src/init" > "$ROOT/init"
grep -q PMF_PROC "$ROOT/init" || { echo "could not insert the extra init lines" >&2; exit 1; }
chmod +x "$ROOT/init"
# x86-64: two tiny dependency-free modules of the booted kernel (from Debian's image package, cached)
# so the guest has loaded modules to list. Best effort: without them /proc/modules is simply empty.
FILES=init
if [ "$ARCH" = x86_64 ]; then
  VER=$(ls "$W/x86_64/boot/" | sed -n 's/^vmlinuz-//p' | head -1)
  MODS=$W/build/pmf-modules-$VER
  if [ ! -f "$MODS/dummy.ko" ] && [ -n "$VER" ]; then
    D=$(mktemp -d)
    if (cd "$D" && apt-get download "linux-image-$VER" >/dev/null 2>&1); then
      dpkg-deb --fsys-tarfile "$D"/*.deb | tar -x -C "$D" --wildcards \
        "./lib/modules/$VER/kernel/drivers/net/dummy.ko" "./lib/modules/$VER/kernel/lib/crc-itu-t.ko" 2>/dev/null || true
      mkdir -p "$MODS" && find "$D/lib" -name '*.ko' -exec cp {} "$MODS/" \; 2>/dev/null || true
    fi
    rm -rf "$D"
  fi
  if ls "$MODS"/*.ko >/dev/null 2>&1; then
    mkdir -p "$ROOT/lib/pmf" && cp "$MODS"/*.ko "$ROOT/lib/pmf/"
    FILES=$(cd "$ROOT" && find lib init | LC_ALL=C sort)
  fi
fi
TMP=$(mktemp "$W/build/pmf.XXXXXX")
cp "$BASE" "$TMP"
( cd "$ROOT" && echo "$FILES" | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -9n >> "$TMP" )
mv "$TMP" "$OUT"
echo "$OUT"
