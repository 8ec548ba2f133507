#!/usr/bin/env bash
# Downloads Debian's real, unsigned EFI images (shim, GRUB, the kernel) for
# arm64 and amd64 and extracts them under .cache/efi/<arch>/ with fixed names:
#
#   shim.efi   usr/lib/shim/shim{aa64,x64}.efi        (shim-unsigned)
#   grub.efi   monolithic grub{aa64,x64}.efi          (grub-efi-<arch>-bin)
#   kernel.efi boot/vmlinuz-*                          (linux-image-*-cloud-<arch>-unsigned)
#
# None of these were written here: they are what a distribution signs.
# Idempotent: an image already extracted is kept. Debian only (the packages
# come from Debian's archive); prints the directory on success.
#
#   scripts/fetch-efi-images.sh [arm64|amd64]...   (default: both)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${SIGNET_EFI_CACHE:-"$here/../.cache/efi"}
arches=("$@")
[ "${#arches[@]}" -gt 0 ] || arches=(arm64 amd64)

[ -r /etc/debian_version ] || { echo "fetch-efi-images: needs Debian's archive (apt-get download)" >&2; exit 1; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

complete() { [ -s "$1/shim.efi" ] && [ -s "$1/grub.efi" ] && [ -s "$1/kernel.efi" ]; }

updated=0
update() {
	if [ "$updated" = 0 ]; then "${sudo_cmd[@]}" apt-get update -q >/dev/null; updated=1; fi
}

for arch in "${arches[@]}"; do
	case "$arch" in
	arm64) efi=aa64 grubdir=arm64-efi ;;
	amd64) efi=x64 grubdir=x86_64-efi ;;
	*) echo "fetch-efi-images: unknown architecture $arch" >&2; exit 2 ;;
	esac
	dir="$root/$arch"
	complete "$dir" && continue
	if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		"${sudo_cmd[@]}" dpkg --add-architecture "$arch"
		updated=0
		update
	fi
	kpkg() { apt-cache search --names-only "^linux-image-6\.1\.0-[0-9]+-cloud-$arch-unsigned\$" | awk '{print $1}' | sort -V | tail -1; }
	kernel=$(kpkg)
	if [ -z "$kernel" ]; then update; kernel=$(kpkg); fi
	[ -n "$kernel" ] || { echo "fetch-efi-images: no linux-image-6.1.0-*-cloud-$arch-unsigned in the archive" >&2; exit 1; }
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt
	pkgs=("shim-unsigned:$arch" "grub-efi-$arch-bin:$arch" "$kernel:$arch")
	(cd "$tmp" && apt-get download -q "${pkgs[@]}" >/dev/null 2>&1) || {
		# Stale package lists: the archive may have a newer kernel now.
		update
		kernel=$(kpkg)
		pkgs=("shim-unsigned:$arch" "grub-efi-$arch-bin:$arch" "$kernel:$arch")
		(cd "$tmp" && apt-get download -q "${pkgs[@]}" >/dev/null)
	}
	for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
	mkdir -p "$dir"
	cp "$tmp/x/usr/lib/shim/shim$efi.efi" "$dir/shim.efi.tmp" && mv "$dir/shim.efi.tmp" "$dir/shim.efi"
	cp "$tmp/x/usr/lib/grub/$grubdir/monolithic/grub$efi.efi" "$dir/grub.efi.tmp" && mv "$dir/grub.efi.tmp" "$dir/grub.efi"
	k=$(ls "$tmp"/x/boot/vmlinuz-* | head -1)
	cp "$k" "$dir/kernel.efi.tmp" && mv "$dir/kernel.efi.tmp" "$dir/kernel.efi"
	basename "$k" >"$dir/kernel.version"
	rm -rf "$tmp"
	complete "$dir"
done
echo "$root"
