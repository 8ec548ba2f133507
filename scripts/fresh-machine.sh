#!/usr/bin/env bash
# Runs the CI job (.ci/run, CI=true) on a freshly installed Debian 12: a
# minimal root made by debootstrap from Debian's archive, with only what a
# new machine brings (gcc, git, curl, sudo, ca-certificates) and this
# machine's Go bound in read-only. scripts/install-deps.sh then installs
# everything else inside it, as it must on a new machine, and the suite
# runs RUNS times in a row on a clean clone of HEAD. Prints each run's
# exit status and wall time; logs stay in DIR/root/srv/ci/run-N.log.
#
#   scripts/fresh-machine.sh DIR [RUNS]      (as root; RUNS defaults to 1)
#
# DIR/root is made once and then reused as it is after the first run (a
# second invocation is no longer a fresh machine: remove DIR for that).
# ../shared, if present, is bound in read-only beside the clone, as CI has
# it. CA certificates added to this machine (/usr/local/share/ca-certificates)
# are copied in, for networks whose HTTPS goes through a proxy.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root (debootstrap, chroot, mount)" >&2; exit 1; }
dir=${1:?usage: scripts/fresh-machine.sh DIR [RUNS]}
runs=${2:-1}
repo=$(cd "$(dirname "$0")/.." && pwd)
goroot=$(go env GOROOT)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$dir/root

command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
if [ ! -e "$root/.fresh-ready" ]; then
	rm -rf "$root"
	debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
	cp /etc/resolv.conf "$root/etc/"
	mkdir -p "$root/usr/local/share/ca-certificates" "$root/root/.config/go"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
	gv=$(go env GOENV)
	[ -f "$gv" ] && cp "$gv" "$root/root/.config/go/env"
	touch "$root/.fresh-base"
fi

mounted=()
bind() { # bind SRC DEST-IN-ROOT [mount options...]
	mountpoint -q "$root/$2" && return
	mkdir -p "$root/$2"
	mount "${@:3}" "$1" "$root/$2"
	mounted=("$root/$2" "${mounted[@]}")
}
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
bind proc proc -t proc
bind sysfs sys -t sysfs
bind /dev dev --rbind
bind tmpfs tmp -t tmpfs
bind "$goroot" usr/local/go --bind -o ro
[ -d "$repo/../shared" ] && bind "$repo/../shared" srv/ci/shared --bind -o ro
in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
if [ ! -e "$root/.fresh-ready" ]; then
	in_root bash -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		gcc libc6-dev git ca-certificates procps curl sudo xz-utils file systemd-sysv && update-ca-certificates'
	touch "$root/.fresh-ready"
fi

rm -rf "$root/srv/ci/signet"
git clone -q "$repo" "$root/srv/ci/signet"
echo "fresh-machine: $(git -C "$repo" log --oneline -1), $runs run(s)"
failed=0
for n in $(seq 1 "$runs"); do
	start=$(date +%s)
	rc=0
	in_root bash -c 'cd /srv/ci/signet && CI=true bash .ci/run' >"$root/srv/ci/run-$n.log" 2>&1 || rc=$?
	echo "run $n: exit $rc, $(($(date +%s) - start)) s (log: $root/srv/ci/run-$n.log)"
	[ "$rc" = 0 ] || failed=1
done
exit "$failed"
