#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian machine, as root, with no manual step.
# Idempotent: each part checks first, so a second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Debian packages: sshd for the sandbox hosts, rsync for the benchmark baseline, libvirt + QEMU for the
# sandbox hypervisor (not libvirt-daemon-system: it would upgrade systemd/udev on this kind of machine);
# chromium renders the email reports to PNG in a test; prometheus brings promtool, which checks the alert rules;
# restic is the store engine, rclone serves the off-site REST repository, libnbd-bin (nbdcopy) reads disks as raw;
# libguestfs-tools (guestfish, guestmount) reads files out of stored images (restore file/ls/mount), xfsprogs
# lets it read XFS guests; fdisk (sfdisk) partitions the test disks.
DEBIAN_PACKAGES=(openssh-server openssh-client rsync coreutils findutils zstd
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  chromium prometheus restic rclone libnbd-bin libguestfs-tools xfsprogs fdisk)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run this script as root once)"; exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Temporal CLI (dev server) and time-skipping test server, pinned, in a project-local venv.
if ! cmp -s requirements-temporal.txt .venv/.installed-requirements 2>/dev/null; then
  log "python venv with $(tr '\n' ' ' < requirements-temporal.txt)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-temporal.txt
  cp requirements-temporal.txt .venv/.installed-requirements
fi

# Node packages, exactly as locked.
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock
fi

# The tiny test guest (Debian kernel + busybox), built from Debian packages, for the sandbox hypervisor.
if [ "$(cat .data/guest/built-from 2>/dev/null)" != "$(sha256sum scripts/sandbox/build-guest.sh | cut -c1-64)" ]; then
  log "building the test guest"
  bash scripts/sandbox/build-guest.sh .data/guest
fi

# libguestfs boots a small appliance built by supermin from the host's kernel in /boot. A machine without a
# readable kernel there (a container) gets Debian's kernel package unpacked for it, not installed, into
# .data/guestfs-kernel/ (with modules.dep); adapters/guestfs/appliance-env.ts points SUPERMIN_KERNEL at it.
# supermin also lstat()s /lib/modules, which such a machine may lack: an empty folder is enough.
if ! ls /boot/vmlinuz-* >/dev/null 2>&1 && [ ! -s .data/guestfs-kernel/built-from ]; then
  log "unpacking a kernel for the libguestfs appliance into .data/guestfs-kernel"
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$kpkg" ] || { log "cannot find Debian's kernel package for the libguestfs appliance"; exit 1; }
  kwork=$(mktemp -d)
  (cd "$kwork" && apt-get download -qq "$kpkg" 2>/dev/null)
  rm -rf .data/guestfs-kernel && mkdir -p .data/guestfs-kernel
  dpkg-deb -x "$kwork"/linux-image-*.deb .data/guestfs-kernel
  rm -rf "$kwork"
  depmod -b .data/guestfs-kernel "${kpkg#linux-image-}"
  echo "$kpkg" > .data/guestfs-kernel/built-from
fi
[ -d /lib/modules ] || { [ "$(id -u)" -ne 0 ] || mkdir -p /lib/modules; }
