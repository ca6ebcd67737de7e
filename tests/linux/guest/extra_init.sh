# Extra ground truth for the Linux OS layer tests (inserted into the testbed init before TESTBED_READY).
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ -r "$d/status" ] || continue
  st=$(awk '/^PPid:/{pp=$2} /^Uid:/{u=$2} /^Gid:/{g=$2} /^Threads:/{t=$2} END{print pp, u, g, t}' "$d/status" 2>/dev/null)
  exe=$(readlink "$d/exe" 2>/dev/null)
  cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
  echo "PMF_PROC $p $st exe=${exe:--} cmd=$cmd"
  if [ -n "$cmd" ]; then
    while read -r l; do echo "PMF_MAPS $p $l"; done < "$d/maps"
  fi
done
for m in /lib/pmf/*.ko; do [ -e "$m" ] && insmod "$m" 2>/dev/null; done
while read -r l; do echo "PMF_MODULE $l"; done < /proc/modules
dmesg 2>/dev/null | head -n 40 | while read -r l; do echo "PMF_DMESG $l"; done
[ -e /sys/kernel/btf/vmlinux ] && echo "PMF_BTF present" || echo "PMF_BTF absent"
