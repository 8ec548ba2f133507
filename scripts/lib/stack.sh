# Sourced, not run: the files of a local signing stack on 127.0.0.1 (a CA
# and certificates, signet-server's, signet-bridge's and a client's
# configuration), written one way for scripts/devstack.sh and
# scripts/bench-scale.sh. Each function writes what its arguments name
# and nothing else; the callers add their own tables with cat >>.
#
# The certificates the configurations refer to, all in one folder PKI:
# ca.pem, server.pem (CN server), bridge.pem (CN localhost) and one USER.pem
# a client user, each with its -key.pem.

# stack_ca PKI CN DAYS makes the CA PKI/ca.pem (and ca-key.pem) unless it is there.
stack_ca() {
	[ -f "$1/ca.pem" ] && return 0
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$3" \
		-subj "/CN=$2" -keyout "$1/ca-key.pem" -out "$1/ca.pem" 2>/dev/null
}

# stack_cert PKI NAME CN EXTENSIONS DAYS makes PKI/NAME.pem (and NAME-key.pem,
# mode 600), issued by the CA, unless it is there. EXTENSIONS are openssl's
# extension lines (subjectAltName=..., extendedKeyUsage=...).
stack_cert() {
	local pki=$1 name=$2
	[ -f "$pki/$name.pem" ] && return 0
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
		-keyout "$pki/$name-key.pem" -out "$pki/$name.csr" 2>/dev/null
	printf '%s\n' "$4" >"$pki/$name.ext"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" -CAcreateserial \
		-days "$5" -extfile "$pki/$name.ext" -out "$pki/$name.pem" 2>/dev/null
	rm -f "$pki/$name.csr" "$pki/$name.ext"
	chmod 600 "$pki/$name-key.pem"
}

# stack_server_toml FILE DIR PKI MODULE LABEL SERVER_PORT [LINE...] writes
# signet-server's configuration: database DIR/signet.db, transcript
# DIR/ceremony.log, spool DIR/spool, the token LABEL through the PKCS#11
# MODULE, 4 idle connections to the bridge at 127.0.0.1:SERVER_PORT, and
# each LINE (key = value) in the [server] table.
stack_server_toml() {
	local file=$1 dir=$2 pki=$3 module=$4 label=$5 port=$6
	shift 6
	cat >"$file" <<EOF
database = "$dir/signet.db"
transcript = "$dir/ceremony.log"

[token]
module = "$module"
label = "$label"

[tls]
cert = "$pki/server.pem"
key = "$pki/server-key.pem"
ca = "$pki/ca.pem"

[[bridge]]
address = "127.0.0.1:$port"
server_name = "localhost"
idle = 4

[server]
spool_dir = "$dir/spool"
EOF
	if [ $# -gt 0 ]; then printf '%s\n' "$@" >>"$file"; fi
}

# stack_bridge_toml FILE PKI CLIENT_PORT SERVER_PORT METRICS_PORT [LINE...]
# writes signet-bridge's configuration: its three listeners on 127.0.0.1,
# only CN server accepted as a server, and each LINE (key = value) among the
# top-level settings, before [tls].
stack_bridge_toml() {
	local file=$1 pki=$2
	{
		cat <<EOF
client_listen = "127.0.0.1:$3"
server_listen = "127.0.0.1:$4"
metrics_listen = "127.0.0.1:$5"
# Only the server's certificate (CN server) may dial in as a server, and it
# may not act as a client.
server_names = ["server"]
EOF
		shift 5
		if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
		cat <<EOF

[tls]
cert = "$pki/bridge.pem"
key = "$pki/bridge-key.pem"
ca = "$pki/ca.pem"
EOF
	} >"$file"
}

# stack_client_toml FILE PKI USER CLIENT_PORT writes the configuration of
# signet (the client) as USER, with PKI/USER.pem, through the bridge at
# localhost:CLIENT_PORT.
stack_client_toml() {
	cat >"$1" <<EOF
bridge-hostname = "localhost"
bridge-port = $4
server-hostname = "server"
user-name = "$3"
ca-file = "$2/ca.pem"
client-cert-file = "$2/$3.pem"
client-key-file = "$2/$3-key.pem"
EOF
}
