#!/usr/bin/env bash
# signet's main job: a key ceremony on a throwaway SoftHSM2 token, then the
# signing service itself. Keys are generated inside the token and one is
# imported from gpg; their public parts are exported as PEM, OpenPGP
# certificates and an X.509 chain (CA, code-signing and TLS certificates, a
# request); files are signed in the ceremony; then scripts/devstack.sh starts
# signet-bridge and signet-server on 127.0.0.1 and the signet client signs
# through them: a file (sign-data, sign-text), real RPM packages (sign-rpms,
# with and without head signing) and Debian's real unsigned shim, GRUB and
# kernel for arm64 and amd64 (sign-pe, with a chain made by
# sign-certificate). Every output is checked by gpg, sq, rpmkeys, sbverify,
# osslsigncode and openssl, not by signet. (The firmware's own verdict, QEMU
# with OVMF/AAVMF and Secure Boot on, is in the test suite.)
#
#   scripts/demo.sh                 work in a fresh temporary directory
#   SIGNET_DEMO_DIR=DIR scripts/demo.sh    work in DIR (must not exist yet)
#
# It installs what is missing first (scripts/install-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
scripts/install-deps.sh

work=${SIGNET_DEMO_DIR:-$(mktemp -d /tmp/signet-demo.XXXXXX)}
[ -n "${SIGNET_DEMO_DIR:-}" ] && { [ -e "$work" ] && { echo "demo: $work exists; choose a new directory" >&2; exit 1; }; mkdir -p "$work"; }
work=$(cd "$work" && pwd)
echo "== signet demo in $work"
CGO_ENABLED=1 go build -o "$work/signet-server" ./cmd/signet-server

passed=0 failed=0
check() { # check "what" command...
	local what=$1; shift
	if "$@" >"$work/check.log" 2>&1; then
		passed=$((passed + 1)); printf '  ok    %s\n' "$what"
	else
		failed=$((failed + 1)); printf '  FAIL  %s\n' "$what"; sed 's/^/        /' "$work/check.log"
	fi
}
refused() { # refused "what" [--saying PATTERN] command...: the command must fail (saying PATTERN)
	local what=$1 pattern=; shift
	if [ "$1" = --saying ]; then pattern=$2; shift 2; fi
	if "$@" >"$work/check.log" 2>&1; then
		failed=$((failed + 1)); printf '  FAIL  %s (was accepted)\n' "$what"
	elif [ -n "$pattern" ] && ! grep -q -- "$pattern" "$work/check.log"; then
		failed=$((failed + 1)); printf '  FAIL  %s (refused, but not for saying %s)\n' "$what" "$pattern"; sed 's/^/        /' "$work/check.log"
	else
		passed=$((passed + 1)); printf '  ok    %s: %s\n' "$what" "$(tail -1 "$work/check.log")"
	fi
}

echo "== a throwaway SoftHSM2 token"
eval "$(SIGNET_SERVER=$work/signet-server SIGNET_TRANSCRIPT=$work/ceremony.log scripts/softhsm-token.sh "$work/token" signet-demo)"
cd "$work"
umask 077
printf 'releng admin password\n' >admin-password
printf 'builder passphrase for fedora-rpm\n' >builder-passphrase
S() { "$work/signet-server" --batch --database "$work/signet.db" --transcript "$work/ceremony.log" \
	--token-label signet-demo --pin-file "$work/token/pin" "$@"; }

echo "== users and keys (generated inside the token)"
S user add releng --admin --password-file admin-password
S user add builder
S key generate fedora-rpm --type rsa4096 --uid 'Fedora Demo (RPM) <releng@example.org>' --owner releng --passphrase-file admin-password
S key generate fedora-ed --type ed25519 --uid 'Fedora Demo (Ed25519) <releng@example.org>'
S key generate sb-ca --type rsa2048
S key generate sb-signer --type rsa2048
S key generate tls --type ecdsa-p256
S key grant fedora-rpm builder --passphrase-file builder-passphrase

echo "== import an existing gpg key, keeping its fingerprint"
# gpg starts agents; stop them when the demo ends.
trap 'for h in "$work/gnupg" "$work/gnupg-verify"; do [ -d "$h" ] && GNUPGHOME=$h gpgconf --kill all; done 2>/dev/null' EXIT
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
printf 'legacy key passphrase\n' >legacy-passphrase
gpg --batch --quiet --pinentry-mode loopback --passphrase-file legacy-passphrase \
	--quick-gen-key 'Legacy Signing Key <legacy@example.org>' rsa3072 sign never 2>/dev/null
legacy_fpr=$(gpg --with-colons --fingerprint legacy@example.org | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --pinentry-mode loopback --passphrase-file legacy-passphrase --armor --export-secret-keys "$legacy_fpr" >legacy.sec.asc
S key import legacy --file legacy.sec.asc --key-passphrase-file legacy-passphrase
rm -f legacy.sec.asc
S key list

echo "== token and database agree"
check "token check: every key is in the token and signs" S token check

echo "== public parts, checked by openssl, gpg and rpmkeys"
for k in fedora-rpm fedora-ed sb-ca tls legacy; do
	S key export "$k" --format pem -o "$k.pub.pem"
	check "$k: PEM public key parses (openssl pkey)" openssl pkey -pubin -in "$k.pub.pem" -noout
done
S key export fedora-rpm --format openpgp -o fedora-rpm.asc
S key export fedora-ed --format openpgp -o fedora-ed.asc
S key export legacy --format openpgp -o legacy.asc
export GNUPGHOME=$work/gnupg-verify
mkdir -m 700 "$GNUPGHOME"
for k in fedora-rpm fedora-ed legacy; do
	check "$k: OpenPGP certificate imports into gpg" gpg --batch --import "$k.asc"
	want=$(S key list | awk -v k="$k" '$1 == k {print $6}')
	check "$k: gpg sees fingerprint $want" sh -c "gpg --with-colons --fingerprint | grep -q ':$want:'"
	check "$k: rpmkeys --import accepts it" rpmkeys --dbpath "$work/rpmdb" --import "$k.asc"
done
check "legacy: fingerprint unchanged by the import ($legacy_fpr)" \
	sh -c "'$work/signet-server' --database '$work/signet.db' key list | grep -q ' $legacy_fpr '"

echo "== signing files in the token"
head -c 100000 /dev/urandom >payload.bin
S key sign fedora-rpm payload.bin -o payload.bin.sig
S key sign fedora-ed payload.bin --armor -o payload.bin.asc
S key sign legacy payload.bin -o payload.bin.legacy.sig
check "fedora-rpm: gpg --verify accepts the detached signature" gpg --batch --verify payload.bin.sig payload.bin
check "fedora-ed: gpg --verify accepts the armored Ed25519 signature" gpg --batch --verify payload.bin.asc payload.bin
check "legacy: the original gpg keyring verifies the token's signature" \
	env GNUPGHOME="$work/gnupg" gpg --batch --verify payload.bin.legacy.sig payload.bin
cp payload.bin tampered.bin && printf 'x' >>tampered.bin
refused "fedora-rpm: gpg rejects the signature over a changed file" gpg --batch --verify payload.bin.sig tampered.bin
S key sign tls payload.bin --format raw -o payload.bin.tls.sig
S key sign fedora-ed payload.bin --format raw -o payload.bin.ed.sig
check "tls (P-256): openssl dgst -verify accepts the raw signature" \
	openssl dgst -sha256 -verify tls.pub.pem -signature payload.bin.tls.sig payload.bin
check "fedora-ed: openssl pkeyutl -verify accepts the raw Ed25519 signature" \
	openssl pkeyutl -verify -pubin -inkey fedora-ed.pub.pem -rawin -in payload.bin -sigfile payload.bin.ed.sig

echo "== an X.509 chain made in the token"
S key export sb-ca --format x509-ca --cert-name ca --subject '/CN=signet demo Secure Boot CA/O=signet demo' -o ca.pem
S key export sb-signer --format x509 --issuer sb-ca --issuer-cert ca --kind codesigning \
	--cert-name signer --subject '/CN=signet demo Secure Boot signer/O=signet demo' --days 730 -o signer.pem
S key export tls --format x509 --issuer sb-ca --issuer-cert ca --kind sslserver \
	--cert-name server --subject '/CN=signet.example.org' --dns signet.example.org --days 365 -o tls.pem
S key export tls --format csr --subject '/CN=signet.example.org/O=signet demo' --dns signet.example.org -o tls.csr
check "CA certificate verifies against itself" openssl verify -CAfile ca.pem ca.pem
check "code-signing certificate chains to the CA" openssl verify -CAfile ca.pem signer.pem
check "code-signing certificate has the codeSigning EKU" sh -c "openssl x509 -in signer.pem -noout -ext extendedKeyUsage | grep -q 'Code Signing'"
check "TLS certificate verifies for signet.example.org" openssl verify -CAfile ca.pem -purpose sslserver -verify_hostname signet.example.org tls.pem
check "PKCS#10 request self-signature verifies" sh -c "openssl req -verify -noout -in tls.csr 2>&1 | grep -q 'verify OK'"
refused "the code-signing certificate does not verify for TLS" openssl verify -CAfile ca.pem -purpose sslserver signer.pem

echo "== refusals leave nothing behind"
refused "wrong token PIN" sh -c "echo 0000 >badpin; '$work/signet-server' --batch --database '$work/signet.db' --token-label signet-demo --pin-file badpin key generate nope --type ed25519"
refused "unknown token label" S --token-label no-such-token key generate nope --type ed25519
refused "unsupported key type" S key generate nope --type dsa1024
refused "corrupt PEM import" sh -c "printf -- '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' >corrupt.pem; '$work/signet-server' --batch --database '$work/signet.db' --token-label signet-demo --pin-file '$work/token/pin' key import nope --file corrupt.pem"
refused "export to a file for a key that does not exist" S key export nope --format pem -o nope.pem
check "no key 'nope' and no file nope.pem were left" sh -c "! '$work/signet-server' --database '$work/signet.db' key list | grep -q '^nope ' && [ ! -e nope.pem ]"

echo "== the signing service: client -> bridge -> server (scripts/devstack.sh)"
stack=$work/stack
trap 'for h in "$work/gnupg" "$work/gnupg-verify"; do [ -d "$h" ] && GNUPGHOME=$h gpgconf --kill all; done 2>/dev/null; "$root/scripts/devstack.sh" down "$stack" >/dev/null 2>&1' EXIT
"$root/scripts/devstack.sh" up "$stack" | sed 's/^/  /'
SIGNET=("$stack/bin/signet" -c "$stack/alice.toml" --batch)
alice_pass() { printf '%s\0' "$(cat "$stack/secrets/alice-passphrase")"; }
as_alice() { alice_pass | "${SIGNET[@]}" "$@"; }
printf 'signet demo release notes\n- signed through client, bridge and server\n' >notes.txt
alice_pass | "${SIGNET[@]}" get-public-key demo-rsa >demo-rsa.asc
alice_pass | "${SIGNET[@]}" sign-data -o payload.bin.demo.sig demo-rsa payload.bin
alice_pass | "${SIGNET[@]}" sign-data --armor -o payload.bin.demo.asc demo-rsa payload.bin
alice_pass | "${SIGNET[@]}" sign-text -o notes.txt.asc demo-rsa notes.txt
export GNUPGHOME=$work/gnupg-service
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import demo-rsa.asc 2>/dev/null
check "sign-data through the service: gpg --verify accepts it" gpg --batch --verify payload.bin.demo.sig payload.bin
check "sign-data --armor through the service: gpg --verify accepts it" gpg --batch --verify payload.bin.demo.asc payload.bin
check "sign-text through the service: gpg --verify accepts the cleartext message" gpg --batch --verify notes.txt.asc
check "sign-data through the service: sq verify accepts it" sq verify --signer-cert demo-rsa.asc --detached payload.bin.demo.sig payload.bin
refused "sign-data with a wrong passphrase" --saying AUTHENTICATION_FAILED sh -c "printf 'wrong\0' | '$stack/bin/signet' -c '$stack/alice.toml' --batch sign-data -o wrong.sig demo-rsa payload.bin"
check "the refused request wrote no file" test ! -e wrong.sig
refused "admin operation with alice's certificate for user admin" sh -c "printf 'x\0' | '$stack/bin/signet' -c '$stack/alice.toml' -u admin --batch list-users"
GNUPGHOME=$work/gnupg-service gpgconf --kill all 2>/dev/null || true

echo "== RPM packages through the service (go-rpmutils' test packages, every payload compression)"
rpmsrc=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json github.com/sassoftware/go-rpmutils@v0.4.0 |
	awk -F'"' '$2 == "Dir" {print $4}')/testdata
mkdir -p rpms signed-rpms head-rpms
cp "$rpmsrc"/*.rpm rpms/ && chmod u+w rpms/*.rpm
alice_pass | "${SIGNET[@]}" get-public-key demo-ed25519 >demo-ed25519.asc
mkdir -p service-rpmdb
rpmkeys --dbpath "$work/service-rpmdb" --import demo-rsa.asc
rpmkeys --dbpath "$work/service-rpmdb" --import demo-ed25519.asc
check "sign-rpms demo-rsa (whole packages, one connection)" as_alice sign-rpms -o signed-rpms demo-rsa rpms/*.rpm
for f in signed-rpms/*.rpm; do
	check "rpmkeys --checksig: $(basename "$f")" sh -c "rpmkeys --dbpath '$work/service-rpmdb' --checksig -v '$f' | grep -q 'Header V4 RSA/SHA256 Signature, key ID [0-9a-f]*: OK' && rpmkeys --dbpath '$work/service-rpmdb' --checksig '$f' >/dev/null"
done
alice_pass | "${SIGNET[@]}" sign-rpms --head-signing -o head-rpms demo-ed25519 $(ls rpms/*.rpm | grep -v simple-1.0.1)
check "sign-rpms --head-signing demo-ed25519: rpmkeys accepts every package" \
	sh -c "for f in head-rpms/*.rpm; do rpmkeys --dbpath '$work/service-rpmdb' --checksig -v \"\$f\" | grep -q 'EdDSA/SHA256 Signature.*OK' && rpmkeys --dbpath '$work/service-rpmdb' --checksig \"\$f\" >/dev/null || exit 1; done"
cp rpms/payload-test-0.1-w9.gzdio.x86_64.rpm corrupt.rpm
printf '\377' | dd of=corrupt.rpm bs=1 seek=$(($(stat -c %s corrupt.rpm) - 100)) conv=notrunc 2>/dev/null
refused "sign-rpm of a package with a flipped payload byte" --saying CORRUPT_RPM as_alice sign-rpm -o corrupt-signed.rpm demo-rsa corrupt.rpm
check "the corrupt package was not signed" test ! -e corrupt-signed.rpm

echo "== Secure Boot through the service (Debian's unsigned shim, GRUB and kernel)"
if efi=$("$root/scripts/fetch-efi-images.sh" 2>/dev/null); then
	for arch in arm64 amd64; do
		for img in shim grub kernel; do
			alice_pass | "${SIGNET[@]}" sign-pe -o "$arch-$img.efi" demo-sb signer "$efi/$arch/$img.efi"
			check "sign-pe $arch $img: sbverify --cert (the Secure Boot CA)" sbverify --cert "$stack/pki/sb-ca.pem" "$arch-$img.efi"
			check "sign-pe $arch $img: osslsigncode verify -CAfile" sh -c "osslsigncode verify -CAfile '$stack/pki/sb-ca.pem' -in '$arch-$img.efi' | grep -q Succeeded"
		done
	done
	gzip -c "$efi/arm64/kernel.efi" >Image.gz
	refused "sign-pe of a gzip-compressed kernel (Image.gz)" --saying gzip as_alice sign-pe -o Image.gz.signed demo-sb signer Image.gz
	check "nothing was written for Image.gz" test ! -e Image.gz.signed
else
	echo "  (no EFI images: scripts/fetch-efi-images.sh needs Debian's archive)"
fi
check "the audit chain verifies" "$stack/bin/signet-server" --config "$stack/server.toml" audit verify

echo "== the ceremony transcript ($work/ceremony.log)"
sed 's/^/  /' ceremony.log | cut -c1-160
check "no PIN or passphrase in the transcript, database or outputs" \
	sh -c "! grep -rqF -e \"\$(cat token/pin)\" -e 'builder passphrase' -e 'releng admin password' -e 'legacy key passphrase' ceremony.log signet.db* *.pem *.asc"

echo
echo "demo: $passed passed, $failed failed (work directory $work)"
[ "$failed" -eq 0 ]
