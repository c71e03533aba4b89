#!/usr/bin/env bash
# Builds the lab guest's image into .cache/guest/ (docs/lab.md#vm-pods): Debian's cloud kernel
# (vmlinuz) and an initramfs (initramfs.gz) with busybox-static, the virtio-net modules, init and
# castnet-guest. Idempotent: a no-op while .cache/guest/inputs matches the inputs' hash (the kernel
# package's version, busybox, init, castnet-guest.c and this script). The kernel package is only
# downloaded and unpacked into the cache, never installed on the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../.cache/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The version the metapackage points at today, e.g. linux-image-6.1.0-57-cloud-amd64.
resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(resolve)
if [ -z "$kpkg" ] && [ ! -s "$out/kernel-package" ]; then
  apt-get update -qq
  kpkg=$(resolve)
fi
if [ -z "$kpkg" ]; then
  # Offline or no apt lists: keep the kernel already cached, if any.
  kpkg=$(cat "$out/kernel-package" 2>/dev/null || true)
  [ -n "$kpkg" ] || { echo "guest image: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
fi
# Loaded in this order by init (insmod: the cache has no modules.dep); each needs the ones before it.
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
hash=$( (echo "$kpkg $modules"; sha256sum /bin/busybox "$here/init" "$here/castnet-guest.c" "$here/build.sh" | cut -d' ' -f1) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/inputs" 2>/dev/null)" = "$hash" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.gz" ] && [ -x "$out/castnet-guest" ]; then
  exit 0
fi
echo "guest image: building $out ($kpkg)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kroot=$out/$kpkg
if [ ! -d "$kroot/boot" ]; then
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null)
  mkdir -p "$kroot.tmp"
  dpkg -x "$work"/"$kpkg"_*.deb "$kroot.tmp"
  rm -rf "$kroot" && mv "$kroot.tmp" "$kroot"
fi
kver=${kpkg#linux-image-}

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
gcc -static -Os -Wall -Wextra -Werror -o "$root/bin/castnet-guest" "$here/castnet-guest.c"
strip "$root/bin/castnet-guest"
# The same static tool for pods on the host side (a lab pod streaming to guests: pkg/lab/guest.ts guestTool).
cp "$root/bin/castnet-guest" "$work/castnet-guest"
for m in $modules; do
  ko=$(find "$kroot/lib/modules/$kver" -name "$m.ko" | head -n1)
  [ -n "$ko" ] || { echo "guest image: no $m.ko in $kpkg" >&2; exit 1; }
  cp "$ko" "$root/lib/modules/"
done
echo "$modules" >"$root/lib/modules/load-order"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initramfs.gz"

# Replaced atomically: a guest booting meanwhile reads either the old image or the new one.
cp "$kroot/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initramfs.gz" "$out/initramfs.gz"
mv "$work/castnet-guest" "$out/castnet-guest"
echo "$kpkg" >"$out/kernel-package"
echo "$hash" >"$out/inputs"
# Other kernels' unpacked trees are no longer needed.
find "$out" -mindepth 1 -maxdepth 1 -type d -name 'linux-image-*' ! -name "$kpkg" -exec rm -rf {} +
