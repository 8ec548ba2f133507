#!/usr/bin/env bash
# Builds the RPMs from dist/signet.spec exactly as a packager would (a
# `git archive` tarball of HEAD, the module cache `go mod download` filled,
# rpmbuild -bb with no network), then checks them: file lists, owners and
# modes (rpm -qlvp), the users the scriptlets create (rpm -qp --scripts),
# that a client host gets no server, --version, man pages and completions
# generated from the command trees, `systemd-analyze verify` on each unit
# and `systemd-analyze security` exposure (must stay below 5.0, "OK").
#
#   scripts/test-dist.sh            build in a temporary directory
#   SIGNET_RPM_DIR=DIR scripts/test-dist.sh    keep the RPMs in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
scripts/install-deps.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
fail() { echo "  FAIL  $*"; failed=$((failed + 1)); }
ok() { echo "  ok    $*"; passed=$((passed + 1)); }

version=$(sed -n 's/^Version: *//p' dist/signet.spec)
commit=$(git rev-parse HEAD)
top=$work/rpmbuild
mkdir -p "$top/SOURCES"
echo "== rpmbuild -bb dist/signet.spec (signet $version, commit $commit)"
git archive --prefix="signet-$version/" -o "$top/SOURCES/signet-$version.tar.gz" HEAD
go mod download
# No network while building: a namespace of its own where the kernel
# allows one (root, CI); the spec sets GOPROXY=off anyway. --nodeps:
# Debian's rpm database knows none of the build requirements.
net=()
unshare -n true 2>/dev/null && net=(unshare -n)
[ "${#net[@]}" -gt 0 ] || echo "  (unshare -n unavailable: building with GOPROXY=off only)"
if ! "${net[@]}" rpmbuild -bb --nodeps --define "_topdir $top" --define "commit $commit" dist/signet.spec >"$work/rpmbuild.log" 2>&1; then
	tail -40 "$work/rpmbuild.log"
	echo "test-dist: rpmbuild failed"
	exit 1
fi
rpms=$top/RPMS/$(uname -m)
ls -l "$rpms"
if [ -n "${SIGNET_RPM_DIR:-}" ]; then mkdir -p "$SIGNET_RPM_DIR" && cp "$rpms"/*.rpm "$SIGNET_RPM_DIR"/; fi
rpmof() { ls "$rpms"/signet-"$1"-"$version"-*.rpm; }

echo "== file lists, owners and modes (rpm -qlvp)"
# has RPM MODE OWNER GROUP PATH: the package lists PATH with that mode and owner.
# rpm -qlvp shortens owner names to 8 characters; the same fields in full:
listing() { rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$1"; }
has() {
	local line
	line=$(listing "$(rpmof "$1")" | awk -v p="$5" '$NF == p')
	if [ -z "$line" ]; then fail "signet-$1 lacks $5"; return; fi
	set -- "$1" "$2" "$3" "$4" "$5" $line
	if [ "$6" = "$2" ] && [ "$7" = "$3" ] && [ "$8" = "$4" ]; then ok "signet-$1: $2 $3:$4 $5"; else fail "signet-$1: $5 is $6 $7:$8, want $2 $3:$4"; fi
}
for r in server bridge robo client; do
	echo "-- rpm -qlvp signet-$r (without man pages)"
	rpm -qlvp "$(rpmof "$r")" | grep -v /man1/
done
for r in server bridge robo; do
	has "$r" -rwxr-xr-x root root /usr/bin/signet-$r
	has "$r" -rw-r--r-- root root /usr/lib/systemd/system/signet-$r.service
	has "$r" -rw-r--r-- root root /usr/lib/sysusers.d/signet-$r.conf
	has "$r" drwxr-xr-x root root /etc/signet
done
has server -rw-r----- root signet-server /etc/signet/server.toml
has server -rw-r----- root signet-server /etc/signet/softhsm2.conf
has server drwx------ signet-server signet-server /var/lib/signet-server
has server drwx------ signet-server signet-server /var/lib/signet-server/tokens
has server drwx------ signet-server signet-server /var/spool/signet-server
has server -rw-r--r-- root root /usr/lib/tmpfiles.d/signet-server.conf
has server -rw-r--r-- root root /usr/share/doc/signet-server/pin-credential.conf
has bridge -rw-r----- root signet-bridge /etc/signet/bridge.toml
has robo -rw-r----- root signet-robo /etc/signet/robo.toml
has robo -rw-r----- root signet-robo /etc/signet/robo-client.toml
has robo drwx------ signet-robo signet-robo /var/lib/signet-robo
has robo -rw-r--r-- root root /usr/lib/tmpfiles.d/signet-robo.conf
has client -rwxr-xr-x root root /usr/bin/signet
for r in client server bridge robo; do
	p=signet-$r; [ "$r" = client ] && p=signet
	has "$r" -rw-r--r-- root root /usr/share/bash-completion/completions/$p
	has "$r" -rw-r--r-- root root /usr/share/zsh/site-functions/_$p
	has "$r" -rw-r--r-- root root /usr/share/fish/vendor_completions.d/$p.fish
done
# A client host installs no server: nothing of another role in signet-client,
# and each role's package holds only its own programs and man pages.
# (Outputs are captured before grep reads them: with pipefail, grep -q
# closing a pipe early would fail the writer, and a failing rpm must fail.)
files=$(rpm -qlp "$(rpmof client)")
if grep -E 'signet-(server|bridge|robo)|/etc/|systemd' <<<"$files"; then
	fail "signet-client carries a service's files (above)"
else ok "signet-client: the signet program, its man pages and completions only"; fi
for r in server bridge robo; do
	files=$(rpm -qlp "$(rpmof "$r")")
	if grep -E '^/usr/(bin|share/man/man1)/' <<<"$files" | grep -v "/signet-$r[-.]" | grep -v "/signet-$r\$"; then
		fail "signet-$r carries another program's files (above)"
	else ok "signet-$r: only signet-$r's program and man pages"; fi
	conf=$(rpm -qcp "$(rpmof "$r")")
	if grep -q "^/etc/signet/" <<<"$conf"; then ok "signet-$r: /etc/signet files are %config"; else fail "signet-$r: no %config files"; fi
done

echo "== scriptlets create the users (rpm -qp --scripts)"
for r in server bridge robo; do
	s=$(rpm -qp --scripts "$(rpmof "$r")")
	if grep -q "groupadd -r signet-$r" <<<"$s" && grep -q "useradd -r -g signet-$r .* signet-$r\$" <<<"$s" &&
		grep -q "^preinstall scriptlet" <<<"$s"; then
		ok "signet-$r: preinstall creates group and user signet-$r"
	else fail "signet-$r: no user creation in:"; echo "$s"; fi
	grep -q "^u *signet-$r " dist/signet-$r.sysusers || fail "dist/signet-$r.sysusers does not declare signet-$r"
done

echo "== the installed files"
root=$work/root
mkdir -p "$root"
for f in "$rpms"/*.rpm; do (cd "$root" && rpm2cpio "$f" | cpio -idm --quiet); done
for p in signet signet-server signet-bridge signet-robo; do
	out=$("$root/usr/bin/$p" --version)
	gov=$(go env GOVERSION)
	if grep -q "^$p version $version-" <<<"$out" && grep -q "^commit $commit\$" <<<"$out" && grep -q "^built with $gov " <<<"$out"; then
		ok "$p --version: $(tr '\n' ' ' <<<"$out")"
	else fail "$p --version printed: $out"; fi
	# A man page for the program and for every command its --help lists.
	cmds=$("$root/usr/bin/$p" --help | awk '/^Available Commands:/{f=1;next} /^$/{f=0} f{print $1}' | grep -v '^help$')
	[ -n "$cmds" ] || fail "$p --help lists no commands"
	for c in "" $cmds; do
		page=$root/usr/share/man/man1/$p${c:+-$c}.1
		[ -e "$page" ] || page=$page.gz
		[ -e "$page" ] || { fail "no man page for $p $c"; continue; }
	done
	ok "$p: man pages for $(wc -w <<<"$cmds") commands"
	bash -n "$root/usr/share/bash-completion/completions/$p" || fail "$p bash completion does not parse"
done
# The pages are the command tree's own text.
page=$root/usr/share/man/man1/signet-server-status.1
[ -e "$page" ] || page=$page.gz
man=$(zcat -f "$page")
help=$("$root/usr/bin/signet-server" status --help)
if grep -q "Nagios" <<<"$man" && grep -q Nagios <<<"$help"; then
	ok "signet-server-status(1) carries the status command's help"
else fail "signet-server-status(1) does not match --help"; fi

# The shipped configuration decodes under the programs' strict reading
# (an unknown key would fail before these outcomes).
out=$("$root/usr/bin/signet-server" --config "$root/etc/signet/server.toml" status --metrics-file "$work/absent" 2>&1 || true)
if grep -q '^CRITICAL: metrics file' <<<"$out"; then ok "/etc/signet/server.toml decodes"; else fail "/etc/signet/server.toml: $out"; fi
out=$("$root/usr/bin/signet-bridge" --config "$root/etc/signet/bridge.toml" status --timeout 1s 2>&1 || true)
if grep -q '^[A-Z]*: .*127.0.0.1:9334\|^[A-Z]*: signet-bridge has' <<<"$out"; then ok "/etc/signet/bridge.toml decodes (metrics_listen 127.0.0.1:9334)"; else fail "/etc/signet/bridge.toml: $out"; fi
out=$("$root/usr/bin/signet-robo" --config "$root/etc/signet/robo.toml" check-config 2>&1 || true)
if grep -q 'no message kind is enabled' <<<"$out"; then ok "/etc/signet/robo.toml decodes (and asks for a kind to be enabled)"; else fail "/etc/signet/robo.toml: $out"; fi

echo "== systemd-analyze verify"
units=$root/usr/lib/systemd/system
# The units need the standard targets (sysinit.target, ...) beside them:
# the host's, without overwriting the packaged ones.
cp -rn /usr/lib/systemd/system/. "$units/"
for r in server bridge robo; do
	if systemd-analyze verify --man=no --root="$root" "$units/signet-$r.service" >"$work/verify" 2>&1 && [ ! -s "$work/verify" ]; then
		ok "signet-$r.service verifies"
	else fail "systemd-analyze verify signet-$r.service:"; cat "$work/verify"; fi
done
# With the PIN credential drop-in in place.
mkdir -p "$units/signet-server.service.d"
cp "$root/usr/share/doc/signet-server/pin-credential.conf" "$units/signet-server.service.d/"
if systemd-analyze verify --man=no --root="$root" "$units/signet-server.service" >"$work/verify" 2>&1 && [ ! -s "$work/verify" ]; then
	ok "signet-server.service with pin-credential.conf verifies"
else fail "systemd-analyze verify with the credential drop-in:"; cat "$work/verify"; fi
dropin=$(systemd-analyze cat-config --root="$root" systemd/system/signet-server.service.d/pin-credential.conf)
if grep -q '^LoadCredentialEncrypted=signet-token.pin:' <<<"$dropin"; then
	ok "the drop-in loads the signet-token.pin credential"
else fail "the drop-in does not load signet-token.pin"; fi

echo "== systemd-analyze security (exposure; OK is below 5.0)"
for r in server bridge robo; do
	systemd-analyze security --no-pager --offline=yes --root="$root" "$units/signet-$r.service" >"$work/sec" 2>&1 || true
	line=$(grep 'Overall exposure level' "$work/sec" || true)
	exp=$(sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")
	echo "  $line"
	if [ -n "$exp" ] && awk -v e="$exp" 'BEGIN{exit !(e < 5.0)}'; then
		ok "signet-$r.service exposure $exp"
	else fail "signet-$r.service exposure ${exp:-unknown}:"; cat "$work/sec"; fi
done

echo "test-dist: $passed passed, $failed failed"
[ "$failed" = 0 ]
