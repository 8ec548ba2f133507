#!/usr/bin/env bash
# sign-pe of Debian's 27 MB arm64 kernel Image through client, bridge and
# server (RSA-2048 key in SoftHSM2) next to sbsign with a key file on the
# same machine in the same run: the median of ROUNDS wall times each, and
# the peak memory (VmHWM, maximum resident set) of each process while it
# signs (the bridge's and server's peaks are reset after a warm-up request;
# "before" is the peak until then, mostly the server's Argon2id memory).
#
#   scripts/bench-pe.sh            5 rounds
#   ROUNDS=9 scripts/bench-pe.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
rounds=${ROUNDS:-5}
img=$(scripts/fetch-efi-images.sh arm64)/arm64/kernel.efi
dir=$(mktemp -d /tmp/signet-bench.XXXXXX)
trap 'scripts/devstack.sh down "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
scripts/devstack.sh up "$dir" >/dev/null
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
bridge=$(cat "$dir/run/bridge.pid") server=$(cat "$dir/run/server.pid")
# Warm up (the server unwraps alice's PIN once: Argon2id's memory), then
# reset the processes' peak RSS so that it shows signing only.
printf '%s\0' "$(cat "$dir/secrets/alice-passphrase")" | "$dir/bin/signet" -c "$dir/alice.toml" --batch \
	sign-pe -o "$dir/warm.efi" demo-sb signer "$(dirname "$img")/grub.efi"
b0=$(hwm "$bridge") s0=$(hwm "$server")
echo 5 >"/proc/$bridge/clear_refs"
echo 5 >"/proc/$server/clear_refs"

# sbsign's key and certificate: RSA-2048, like demo-sb.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/sb.key" -out "$dir/sb.crt" -days 30 -subj /CN=bench >/dev/null 2>&1
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ms() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1; }
: >"$dir/sbsign.t"
: >"$dir/signet.t"
for i in $(seq "$rounds"); do
	ms sbsign --key "$dir/sb.key" --cert "$dir/sb.crt" --output "$dir/sbsign.efi" "$img" >>"$dir/sbsign.t"
	ms sh -c "printf '%s\0' \"\$(cat '$dir/secrets/alice-passphrase')\" | '$dir/bin/signet' -c '$dir/alice.toml' --batch sign-pe -o '$dir/signet.efi' demo-sb signer '$img'" >>"$dir/signet.t"
done
sbverify --cert "$dir/pki/sb-ca.pem" "$dir/signet.efi" >/dev/null
size=$(stat -c %s "$img")
t_sb=$(awk '{print $1}' "$dir/sbsign.t" | median) m_sb=$(awk '{print $2}' "$dir/sbsign.t" | sort -n | tail -1)
t_sg=$(awk '{print $1}' "$dir/signet.t" | median) m_cl=$(awk '{print $2}' "$dir/signet.t" | sort -n | tail -1)
printf 'image: %s (%d bytes), %d rounds\n' "$img" "$size" "$rounds"
printf '%-34s %10s %16s\n' "" "median s" "peak RSS (KiB)"
printf '%-34s %10.2f %16d\n' "sbsign, key file" "$t_sb" "$m_sb"
printf '%-34s %10.2f %16d\n' "signet sign-pe (client)" "$t_sg" "$m_cl"
printf '%-34s %10s %16s\n' "  signet-bridge" "" "$(hwm "$bridge") (before: $b0)"
printf '%-34s %10s %16s\n' "  signet-server" "" "$(hwm "$server") (before: $s0)"
printf 'signet / sbsign: %.2fx; image %d KiB\n' "$(echo "$t_sg $t_sb" | awk '{print $1/$2}')" $((size / 1024))
