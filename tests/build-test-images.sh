#!/usr/bin/env bash
# Builds the test VM disk images from Debian packages (no registry needed):
# a Debian kernel, a busybox initramfs running tests/guest/init, on a FAT
# disk booted by syslinux. Usage: build-test-images.sh OUTDIR
# Writes OUTDIR/poweroff.{raw,qcow2,vmdk,vdi,vhdx} (boots, prints, powers
# off), OUTDIR/uefi.qcow2 (the same, as a UEFI-only GPT disk),
# OUTDIR/wait.raw (boots, waits for the ACPI power button, shell on ttyS0),
# OUTDIR/fill.qcow2 (fills most of its memory, then powers off).
set -euo pipefail

out=${1:?usage: build-test-images.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
stamp="$out/.stamp"
if [ -f "$stamp" ] && [ "$stamp" -nt "$here/guest/init" ] && [ "$stamp" -nt "$0" ]; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# The kernel the linux-image-amd64 metapackage points at.
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "cannot find the kernel package (run apt-get update)" >&2; exit 1; }
debcache="$out/debs"
mkdir -p "$debcache"
if ! ls "$debcache/${pkg}_"*.deb >/dev/null 2>&1; then
    # apt's sandbox user may not write here: download as root, quietly.
    (cd "$debcache" && apt-get download -q -o APT::Sandbox::User=root "$pkg")
fi
deb=$(ls "$debcache/${pkg}_"*.deb | head -n 1)
mkdir -p "$work/kpkg"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/kpkg" ./boot ./lib/modules
kver=$(ls "$work/kpkg/lib/modules")
cp "$work/kpkg/boot/vmlinuz-$kver" "$work/vmlinuz"

# Initramfs: busybox, the init script, and the modules the power button
# needs (the Debian kernel builds them as modules), in dependency order.
root="$work/initramfs"
mkdir -p "$root"/{bin,proc,sys,dev,modules}
cp /bin/busybox "$root/bin/busybox"
cp "$here/guest/init" "$root/init"
chmod 755 "$root/init"
kmod="$work/kpkg/lib/modules/$kver"
: >"$root/modules.order"
add_module() {
    local name=$1 path dep
    path=$(find "$kmod" -name "$name.ko*" | head -n 1)
    [ -n "$path" ] || return 0
    grep -qx "$(basename "${path%.xz}")" "$root/modules.order" 2>/dev/null && return 0
    case "$path" in
    *.xz) xz -dc "$path" >"$root/modules/$(basename "${path%.xz}")" ;;
    *) cp "$path" "$root/modules/" ;;
    esac
    # A module names what it needs in its modinfo section: depends=a,b
    for dep in $(tr '\0' '\n' <"$root/modules/$(basename "${path%.xz}")" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    basename "${path%.xz}" >>"$root/modules.order"
}
for m in button evdev virtio_rng virtio_pci virtio_blk; do add_module "$m"; done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

make_disk() { # make_disk FILE MODE
    # The FAT file system leaves the disk's last MiB to the guest's marker.
    truncate -s 41M "$1"
    truncate -s 40M "$work/fat.img"
    mkfs.vfat -n TESTVM "$work/fat.img" >/dev/null
    # SERIAL: syslinux greets on the serial console, the guest's first line.
    printf 'SERIAL 0 115200\nDEFAULT linux\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND console=ttyS0 quiet test.mode=%s\n' "$2" >"$work/syslinux.cfg"
    mcopy -i "$work/fat.img" "$work/vmlinuz" "$work/initrd.gz" "$work/syslinux.cfg" ::/
    syslinux --install "$work/fat.img"
    dd if="$work/fat.img" of="$1" conv=notrunc status=none
}

# A GPT disk whose only partition is an EFI system partition, booted by
# systemd-boot under OVMF; no BIOS boot code.
make_uefi_disk() { # make_uefi_disk FILE MODE
    truncate -s 48M "$1"
    sgdisk --clear -n 1:2048:+40M -t 1:ef00 -c 1:ESP "$1" >/dev/null
    rm -f "$work/esp.img"
    truncate -s 40M "$work/esp.img"
    mkfs.vfat -n ESP "$work/esp.img" >/dev/null
    mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i "$work/esp.img" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
    printf 'timeout 0\ndefault test.conf\n' >"$work/loader.conf"
    printf 'title test\nlinux /vmlinuz\ninitrd /initrd.gz\noptions console=ttyS0 quiet test.mode=%s\n' "$2" >"$work/test.conf"
    mcopy -i "$work/esp.img" "$work/loader.conf" ::/loader/loader.conf
    mcopy -i "$work/esp.img" "$work/test.conf" ::/loader/entries/test.conf
    mcopy -i "$work/esp.img" "$work/vmlinuz" "$work/initrd.gz" ::/
    dd if="$work/esp.img" of="$1" bs=1M seek=1 conv=notrunc status=none
}

make_disk "$out/poweroff.raw" poweroff
qemu-img convert -f raw -O qcow2 "$out/poweroff.raw" "$out/poweroff.qcow2"
for fmt in vmdk vdi vhdx; do
    qemu-img convert -f raw -O "$fmt" "$out/poweroff.raw" "$out/poweroff.$fmt"
done
make_uefi_disk "$work/uefi.raw" poweroff
qemu-img convert -f raw -O qcow2 "$work/uefi.raw" "$out/uefi.qcow2"
make_disk "$out/wait.raw" wait
make_disk "$work/fill.raw" fill
qemu-img convert -f raw -O qcow2 "$work/fill.raw" "$out/fill.qcow2"
touch "$stamp"
echo "test images in $out"
