#!/usr/bin/env bash
# Packages a VM disk image file as a container image that crun-qemu runs:
# FROM scratch, with the file as the only entry under /disk/.
set -euo pipefail

usage() {
    echo "Usage: ./package-vm-image.sh <vm_image_file> <container_image_tag>" >&2
    echo "Builds a container image (FROM scratch) holding <vm_image_file> under /disk/, tagged <container_image_tag>." >&2
    exit 2
}

[ $# -eq 2 ] || usage
image=$1
tag=$2
[ -n "$tag" ] || usage
if [ ! -f "$image" ] || [ -L "$image" ]; then
    echo "package-vm-image.sh: $image is not a regular file" >&2
    usage
fi

name=$(basename -- "$image")
ctx=$(mktemp -d)
trap 'rm -rf -- "$ctx"' EXIT

# A hard link avoids copying the image into the build context; across
# file systems fall back to a sparse copy.
ln -- "$image" "$ctx/$name" 2>/dev/null || cp --sparse=always -- "$image" "$ctx/$name"
printf 'FROM scratch\nCOPY ["%s", "/disk/%s"]\n' "$name" "$name" >"$ctx/Containerfile"
podman build --file "$ctx/Containerfile" --tag "$tag" "$ctx"
