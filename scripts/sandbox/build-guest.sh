#!/usr/bin/env bash
# Builds the tiny test guest used by the sandbox hypervisor: Debian's kernel + busybox in an initramfs.
# The guest powers off on ACPI shutdown and writes markers to its disk (/dev/vda) so that a test can read,
# from an image, whether it was taken after a clean shutdown:
#   sector 0: "cbguest boot <n>"      written at every boot
#   sector 1: "cbguest running"       written at boot;  "cbguest clean-shutdown" written by the ACPI handler
#   sector 2: "cbguest tick <n>"      rewritten every second while it runs (a guest that writes during a copy)
#   sector 3: "cbguest broken"        if a test writes this, the guest hangs before it says ready: a disk that
#                                     hashes fine but does not boot, for restore tests
# Kernel command line `cbguest.acpi=off` starts no acpid: a guest that ignores shutdown requests.
# Output: <out>/vmlinuz and <out>/initramfs.gz, and <out>/built-from (this script's hash). Idempotent: does
# nothing when both exist and were built by this version of the script.
set -euo pipefail
out=${1:?usage: build-guest.sh OUT_DIR}
self_hash=$(sha256sum "$0" | cut -c1-64)
[ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.gz" ] && [ "$(cat "$out/built-from" 2>/dev/null)" = "$self_hash" ] && exit 0
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the initramfs is packed from inside another folder
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(kernel_pkg); fi
[ -n "$pkg" ] || { echo "build-guest: cannot find Debian's kernel package" >&2; exit 1; }
kver=${pkg#linux-image-}

(cd "$work" && apt-get download -qq "$pkg" busybox-static 2>/dev/null)
mkdir -p "$work/kernel" "$work/busybox"
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,etc/acpi/PWRF,lib/modules}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for applet in sh mount insmod acpid dd echo cat sync poweroff sleep printf head tr kill; do
  ln -s busybox "$root/bin/$applet"
done
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev; do
  find "$work/kernel/lib/modules/$kver" -name "$m.ko*" -exec cp {} "$root/lib/modules/" \;
  [ -e "$root/lib/modules/$m.ko" ] || { echo "build-guest: module $m not found in $pkg" >&2; exit 1; }
done

cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev; do
  insmod /lib/modules/$m.ko
done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
marker() { printf '%-511s\n' "$2" | dd of=/dev/vda bs=512 seek="$1" count=1 conv=notrunc,fsync 2>/dev/null; }
boots=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000' | head -c 64)
case "$boots" in "cbguest boot "*) n=${boots#cbguest boot }; n=$(( ${n%% *} + 1 ));; *) n=1;; esac
broken=$(dd if=/dev/vda bs=512 skip=3 count=1 2>/dev/null | tr -d '\000' | head -c 14)
if [ "$broken" = "cbguest broken" ]; then echo "cbguest: broken disk, not booting"; while true; do sleep 3600; done; fi
marker 0 "cbguest boot $n"
marker 1 "cbguest running"
( t=0; while true; do t=$((t+1)); marker 2 "cbguest tick $t"; sleep 1; done ) &
echo $! > /tick.pid
case "$(cat /proc/cmdline)" in
  *cbguest.acpi=off*) echo "cbguest: acpid not started (ignores ACPI shutdown)";;
  *) acpid -d -c /etc/acpi > /dev/null 2>&1 & ;;
esac
echo "cbguest: ready (boot $n)"
while true; do sleep 3600; done
INIT
cat > "$root/etc/acpi/PWRF/00000080" <<'PWRF'
#!/bin/sh
kill $(cat /tick.pid 2>/dev/null) 2>/dev/null
printf '%-511s\n' "cbguest clean-shutdown" | dd of=/dev/vda bs=512 seek=1 count=1 conv=notrunc,fsync 2>/dev/null
sync
poweroff -f
PWRF
chmod +x "$root/init" "$root/etc/acpi/PWRF/00000080"

cp "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$out/initramfs.gz.tmp")
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
echo "$self_hash" > "$out/built-from"
echo "build-guest: $out (kernel $kver)" >&2
