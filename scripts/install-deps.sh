#!/usr/bin/env bash
# Installs what signet's build, tests and demo need, and nothing that is
# already there. Debian 12 and Fedora; as root or through sudo. Idempotent.
#
#   scripts/install-deps.sh            tools for the amd64 build, tests, demo
#   scripts/install-deps.sh --arm64    also the arm64 cross toolchain, qemu-user
#                                      and an extracted arm64 SoftHSM2 module
set -euo pipefail

want_arm64=0
for a in "$@"; do
	case "$a" in
	--arm64) want_arm64=1 ;;
	*) echo "install-deps: unknown argument $a" >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
# Extracted arm64 libraries live under the project, outside version control.
arm64_root=${SIGNET_ARM64_ROOT:-"$here/../.cache/arm64-root"}

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
		echo "install-deps: need root or sudo to install packages" >&2; exit 1
	fi
fi

have_all() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || return 1; done; }

# Every command the project uses, and the package that brings it.
# Verifiers: rpmkeys (RPM), gpg and sq (OpenPGP), sbverify, osslsigncode and
# pesign (Authenticode), evmctl (IMA), git, ostree and skopeo (their
# signatures); qemu with OVMF/AAVMF, mtools and mkfs.vfat boot signed EFI
# images under Secure Boot. The interop tests run the unmodified Sigul 1.2
# (../shared/third-party) with Debian's python3: its client needs
# python3-nss, six, cryptography and rpm, its NSS database certutil and
# pk12util; sigul-stack.sh's bridge and server also need sqlalchemy, gpg,
# requests and xattr, and librpm-dev and python3-dev to build
# rpm-head-signing's C extension. rpmbuild, systemd-analyze and unshare
# build and check the packages of dist/. The Koji tests run upstream's hub
# (koji-stack.sh) on PostgreSQL with Python modules psycopg2, dateutil,
# defusedxml, proton and, for its builder daemon, dnf, librepo and Cheetah.
need_cmds=(softhsm2-util gpg openssl rpmkeys pkcs11-tool sq sbverify sbsign osslsigncode pesign evmctl git ostree skopeo
	qemu-system-x86_64 qemu-system-aarch64 mcopy mkfs.vfat cpio rpm2cpio rpmbuild zstd xz rabbitmq-server certutil pk12util systemd-analyze unshare)
# The store's tests and the multi-server tests start throwaway PostgreSQL
# clusters (postgres-test): initdb, pg_ctl and psql, run as the postgres user.
have_postgres() {
	{ ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/psql >/dev/null 2>&1 ||
		have_all initdb pg_ctl psql; } && id postgres >/dev/null 2>&1
}
sigul_py_modules="nss.nss, six, cryptography, rpm, sqlalchemy, gpg, requests, xattr"
have_sigul_py() {
	/usr/bin/python3 -c "import $sigul_py_modules" 2>/dev/null &&
		/usr/bin/python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null &&
		[ -e /usr/include/rpm/rpmlib.h ]
}
koji_py_modules="psycopg2, dateutil, defusedxml, proton, dnf, librepo, Cheetah"
have_koji() {
	/usr/bin/python3 -c "import $koji_py_modules" 2>/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && have_all curl
}
if [ -r /etc/debian_version ]; then
	softhsm_mod=/usr/lib/softhsm/libsofthsm2.so
	pkgs=(softhsm2 gnupg openssl rpm opensc sq ca-certificates gcc
		sbsigntool osslsigncode pesign ima-evm-utils git ostree skopeo
		qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 mtools dosfstools cpio rpm2cpio zstd xz-utils time
		rabbitmq-server systemd util-linux
		libnss3-tools python3-nss python3-six python3-cryptography python3-rpm python3-sqlalchemy python3-gpg
		python3-requests python3-xattr librpm-dev python3-dev python3-setuptools
		postgresql python3-psycopg2 python3-dateutil python3-defusedxml python3-qpid-proton curl
		python3-dnf python3-librepo python3-cheetah)
	firmware=(/usr/share/OVMF/OVMF_CODE_4M.secboot.fd /usr/share/AAVMF/AAVMF_CODE.fd)
	have_fw() { for f in "${firmware[@]}"; do [ -e "$f" ] || return 1; done; }
	[ -e "$softhsm_mod" ] && have_all "${need_cmds[@]}" && have_fw && have_sigul_py && have_koji && have_postgres && pkgs=()
	if [ "$want_arm64" = 1 ]; then
		{ have_all aarch64-linux-gnu-gcc qemu-aarch64-static && [ -e /usr/aarch64-linux-gnu/include/stdio.h ]; } || pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
		if ! dpkg --print-foreign-architectures | grep -qx arm64; then
			"${sudo_cmd[@]}" dpkg --add-architecture arm64
			updated=0
		fi
		for p in libc6:arm64 libssl3:arm64 libsqlite3-0:arm64 libstdc++6:arm64 libgcc-s1:arm64; do
			dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
		done
	fi
	if [ "${#pkgs[@]}" -gt 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		"${sudo_cmd[@]}" apt-get update -q
		"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}"
	fi
	# Bookworm's osslsigncode 2.5 answers "Invalid signature" for any
	# image sbsign or signet signs (sbsign's own output included) while
	# sbverify, pesign and the firmware accept it; 2.9 verifies them.
	# Take it from bookworm-backports, Debian's own archive.
	ossl_version=$(dpkg-query -W -f='${Version}' osslsigncode 2>/dev/null || true)
	if [ -n "$ossl_version" ] && dpkg --compare-versions "$ossl_version" lt 2.9 &&
		grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release; then
		bpo=/etc/apt/sources.list.d/signet-bookworm-backports.sources
		if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
			printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
				'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
				"${sudo_cmd[@]}" tee "$bpo" >/dev/null
		fi
		export DEBIAN_FRONTEND=noninteractive
		"${sudo_cmd[@]}" apt-get update -q
		"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends -t bookworm-backports osslsigncode
	fi
	if [ "$want_arm64" = 1 ] && [ ! -e "$arm64_root/usr/lib/softhsm/libsofthsm2.so" ]; then
		# libsofthsm2:arm64 is not Multi-Arch: same; installing it would remove
		# the amd64 package. Extract it beside the project instead.
		tmp=$(mktemp -d)
		chmod 755 "$tmp" # apt downloads as _apt
		(cd "$tmp" && apt-get download libsofthsm2:arm64 >/dev/null) || {
			"${sudo_cmd[@]}" apt-get update -q
			(cd "$tmp" && apt-get download libsofthsm2:arm64 >/dev/null)
		}
		mkdir -p "$arm64_root"
		dpkg-deb -x "$tmp"/libsofthsm2_*_arm64.deb "$arm64_root"
		rm -rf "$tmp"
		# Debian puts it in the multiarch directory; give it one fixed path.
		mkdir -p "$arm64_root/usr/lib/softhsm"
		real=$(find "$arm64_root/usr/lib" -name libsofthsm2.so -path '*aarch64*' | head -1)
		ln -sf "$real" "$arm64_root/usr/lib/softhsm/libsofthsm2.so"
	fi
elif [ -r /etc/fedora-release ]; then
	softhsm_mod=/usr/lib64/pkcs11/libsofthsm2.so
	pkgs=(softhsm gnupg2 openssl rpm rpm-build opensc sequoia-sq gcc
		sbsigntools osslsigncode pesign ima-evm-utils git ostree skopeo
		qemu-system-x86-core qemu-system-aarch64-core edk2-ovmf edk2-aarch64 mtools dosfstools cpio zstd xz
		rabbitmq-server systemd util-linux postgresql-server postgresql)
	[ "$want_arm64" = 1 ] && pkgs+=(gcc-aarch64-linux-gnu qemu-user-static-aarch64)
	missing=()
	for p in "${pkgs[@]}"; do rpm -q "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [ "${#missing[@]}" -gt 0 ]; then "${sudo_cmd[@]}" dnf install -y "${missing[@]}"; fi
	# Sigul 1.2 for the interop tests; python3-nss is not in every Fedora
	# release, and sigul-stack.sh itself is for Debian: best effort.
	if ! have_sigul_py; then
		"${sudo_cmd[@]}" dnf install -y nss-tools python3-nss python3-six python3-cryptography python3-rpm python3-sqlalchemy \
			python3-gpg python3-requests python3-pyxattr rpm-devel python3-devel python3-setuptools ||
			echo "install-deps: Sigul's Python modules are not all installable here; the interop tests will skip" >&2
	fi
	if [ "$want_arm64" = 1 ]; then
		echo "install-deps: on Fedora, provide an arm64 sysroot with SoftHSM2 yourself (SIGNET_ARM64_ROOT)" >&2
	fi
else
	echo "install-deps: unsupported system; need: ${need_cmds[*]} and SoftHSM2" >&2
	exit 1
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { echo "install-deps: Go 1.26 or newer is required (https://go.dev/doc/install)" >&2; exit 1; }
