package protocol

import (
	"fmt"
	"slices"
)

// Size units and the default limits of §4.3, §4.4 and §7.11.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
	TiB = 1 << 40

	// DefaultMaxFilePayload is the server's default
	// [server] max-file-payload-size, the "file limit".
	DefaultMaxFilePayload = 1 * GiB
	// DefaultMaxMemoryPayload is the server's default
	// [server] max-memory-payload-size (unknown operations only).
	DefaultMaxMemoryPayload = 1 * MiB
	// DefaultMaxRPMsPayloads is the default total of all sign-rpms
	// payloads on one connection, for the bridge and the server.
	DefaultMaxRPMsPayloads = 10 * GiB
)

// PayloadClass is the server's storage class for a request payload (§4.3
// step 4, §8.1).
type PayloadClass uint8

// The payload storage classes of §8.1.
const (
	// PayloadNone: P must be 0, otherwise the server drops the request.
	PayloadNone PayloadClass = iota
	// PayloadFile: P up to [server] max-file-payload-size.
	PayloadFile
	// PayloadMemory: P up to [server] max-memory-payload-size; only the
	// unknown-operation handler uses it.
	PayloadMemory
)

// String returns "NONE", "FILE" or "MEMORY".
func (c PayloadClass) String() string {
	switch c {
	case PayloadNone:
		return "NONE"
	case PayloadFile:
		return "FILE"
	case PayloadMemory:
		return "MEMORY"
	}
	return fmt.Sprintf("PayloadClass(%d)", uint8(c))
}

// Limit returns the largest payload length the server accepts for the
// class, given its configured [server] max-file-payload-size and
// max-memory-payload-size (§4.3 step 4): 0 for PayloadNone.
func (c PayloadClass) Limit(maxFile, maxMemory uint64) uint64 {
	switch c {
	case PayloadFile:
		return maxFile
	case PayloadMemory:
		return maxMemory
	}
	return 0
}

// AuthClass is an operation's authentication class at the server (§8.1,
// §8.2).
type AuthClass uint8

// The authentication classes of §8.1.
const (
	AuthNone            AuthClass = iota // unknown-operation handler only
	AuthAdmin                            // password of a server administrator
	AuthKeyUser                          // passphrase of a user with access to the key
	AuthKeyAdmin                         // passphrase of a key administrator
	AuthAdminOrKeyAdmin                  // password (ADMIN) or passphrase (KEY-ADMIN)
	AuthAdminOrKeyUser                   // password (ADMIN) or passphrase (KEY-USER)
)

// String returns the class name as §8.1 writes it, e.g. "ADMIN or KEY-USER".
func (c AuthClass) String() string {
	switch c {
	case AuthNone:
		return "none"
	case AuthAdmin:
		return "ADMIN"
	case AuthKeyUser:
		return "KEY-USER"
	case AuthKeyAdmin:
		return "KEY-ADMIN"
	case AuthAdminOrKeyAdmin:
		return "ADMIN or KEY-ADMIN"
	case AuthAdminOrKeyUser:
		return "ADMIN or KEY-USER"
	}
	return fmt.Sprintf("AuthClass(%d)", uint8(c))
}

// FieldSpec describes one whitelisted field of an operation (§4.4, §7.2).
type FieldSpec struct {
	Name     string
	Type     FieldType
	Required bool
	Values   []string // allowed values of a TypeEnum field
}

// Check validates value against the spec's type and, for an enum, its
// list. The error is a *FieldError wrapping ErrInvalidField.
func (s FieldSpec) Check(value []byte) error {
	if err := s.Type.Check(s.Name, value); err != nil {
		return err
	}
	if s.Type == TypeEnum && !slices.Contains(s.Values, string(value)) {
		return fieldErr(s.Name, ErrInvalidField, "value %q is not one of %q", value, s.Values)
	}
	return nil
}

// OpSpec is one row of the operation table of §4.4, plus the server-side
// facts of §8.2 that a bridge or server needs as data.
type OpSpec struct {
	// Name is the op value on the wire.
	Name string
	// Fields are the op-specific outer fields the bridge allows; op and
	// user (strings, required) are allowed in every request and not
	// listed.
	Fields []FieldSpec
	// BridgeMaxPayload is the largest P the bridge forwards.
	BridgeMaxPayload uint64
	// ServerPayload is the server's storage class for P.
	ServerPayload PayloadClass
	// Auth is the server's authentication class.
	Auth AuthClass
	// PayloadHashOptional is true only for sign-rpm, whose inner message
	// may leave out payload-auth-sha512 (§5.2, §7.10).
	PayloadHashOptional bool
	// SubRequests is true only for sign-rpms, which is followed by the
	// sub-protocol of §7.
	SubRequests bool
}

// Field returns the spec of the op-specific field name.
func (o *OpSpec) Field(name string) (FieldSpec, bool) {
	for _, f := range o.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return FieldSpec{}, false
}

func str(name string) FieldSpec    { return FieldSpec{Name: name, Type: TypeString} }
func reqStr(name string) FieldSpec { return FieldSpec{Name: name, Type: TypeString, Required: true} }
func boolean(name string) FieldSpec {
	return FieldSpec{Name: name, Type: TypeBool}
}

// opTable is §4.4 in its order, with the authentication classes of §8.2.
var opTable = []OpSpec{
	{Name: "list-users", Auth: AuthAdmin},
	{Name: "new-user", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name"), boolean("admin")}},
	{Name: "delete-user", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name")}},
	{Name: "user-info", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name")}},
	{Name: "modify-user", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name"), boolean("admin"), str("new-name")}},
	{Name: "key-user-info", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name"), reqStr("key")}},
	{Name: "modify-key-user", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("name"), reqStr("key"), boolean("key-admin")}},
	{Name: "list-keys", Auth: AuthAdmin},
	{Name: "new-key", Auth: AuthAdmin, Fields: []FieldSpec{
		reqStr("key"), str("keytype"), str("initial-key-admin"), str("name-real"), str("name-comment"), str("name-email"),
		{Name: "expire-date", Type: TypeDate},
	}},
	{Name: "import-key", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("key"), str("initial-key-admin"), str("keytype")},
		BridgeMaxPayload: 1 * MiB, ServerPayload: PayloadFile},
	{Name: "delete-key", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("key")}},
	{Name: "modify-key", Auth: AuthAdmin, Fields: []FieldSpec{reqStr("key"), str("new-name")}},
	{Name: "list-key-users", Auth: AuthAdminOrKeyAdmin, Fields: []FieldSpec{reqStr("key")}},
	{Name: "grant-key-access", Auth: AuthKeyAdmin, Fields: []FieldSpec{reqStr("key"), reqStr("name")}},
	{Name: "change-key-expiration", Auth: AuthKeyAdmin, Fields: []FieldSpec{reqStr("key"), str("subkey"), {Name: "expire-date", Type: TypeDate}}},
	{Name: "revoke-key-access", Auth: AuthAdminOrKeyAdmin, Fields: []FieldSpec{reqStr("key"), reqStr("name")}},
	{Name: "get-public-key", Auth: AuthAdminOrKeyUser, Fields: []FieldSpec{reqStr("key")}},
	{Name: "change-passphrase", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key")}},
	{Name: "sign-text", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "sign-data", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key"), boolean("armor")}, BridgeMaxPayload: 1 * TiB, ServerPayload: PayloadFile},
	{Name: "decrypt", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "sign-git-tag", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "sign-container", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key"), reqStr("docker-reference")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "sign-ostree", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key"), reqStr("ostree-hash")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "sign-rpm", Auth: AuthKeyUser, Fields: []FieldSpec{
		reqStr("key"), str("file-signing-key"), str("rpm-name"), str("rpm-epoch"), str("rpm-version"), str("rpm-release"), str("rpm-arch"), str("koji-instance"),
		{Name: "rpm-sigmd5", Type: TypeBlob},
		boolean("import-signature"), boolean("return-data"), boolean("head-signing"), boolean("v3-signature"),
	}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile, PayloadHashOptional: true},
	{Name: "sign-rpms", Auth: AuthKeyUser, Fields: []FieldSpec{
		reqStr("key"), str("file-signing-key"), str("koji-instance"),
		boolean("import-signature"), boolean("return-data"), boolean("v3-signature"), boolean("head-signing"),
	}, SubRequests: true},
	{Name: "sign-certificate", Auth: AuthKeyUser, Fields: []FieldSpec{
		reqStr("issuer-key"), str("issuer-certificate-name"),
		reqStr("subject-key"), reqStr("subject-certificate-name"), reqStr("subject"), reqStr("validity"),
		{Name: "certificate-type", Type: TypeEnum, Required: true, Values: []string{"ca", "codesigning", "sslserver"}},
	}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadNone},
	// replace-signatures is a signet extension (a Sigul bridge drops a
	// request that carries it): replace the image's signatures instead of
	// adding one.
	{Name: "sign-pe", Auth: AuthKeyUser, Fields: []FieldSpec{reqStr("key"), reqStr("cert-name"), boolean("replace-signatures")}, BridgeMaxPayload: 1 * GiB, ServerPayload: PayloadFile},
	{Name: "list-binding-methods", Auth: AuthAdmin},
}

// kojiLookupFields are the fields the bridge requires when a sign-rpm
// request or a sign-rpms sub-request has an empty payload, because it then
// fetches the RPM from Koji by them (§7.2, §7.10).
var kojiLookupFields = []string{"rpm-name", "rpm-version", "rpm-release", "rpm-arch"}

// subRequestFieldSpecs is the bridge's complete whitelist of sub-request
// fields (§7.2).
var subRequestFieldSpecs = []FieldSpec{
	{Name: FieldID, Type: TypeBlob, Required: true},
	str("rpm-name"), str("rpm-epoch"), str("rpm-version"), str("rpm-release"), str("rpm-arch"),
	{Name: "rpm-sigmd5", Type: TypeBlob},
}

// Ops returns a copy of the operation table, in the order of §4.4.
func Ops() []OpSpec {
	out := make([]OpSpec, len(opTable))
	for i, o := range opTable {
		out[i] = o
		out[i].Fields = slices.Clone(o.Fields)
	}
	return out
}

// LookupOp returns the spec of the operation name, and false if the table
// has no such operation.
func LookupOp(name string) (OpSpec, bool) {
	for _, o := range opTable {
		if o.Name == name {
			o.Fields = slices.Clone(o.Fields)
			return o, true
		}
	}
	return OpSpec{}, false
}

var commonFields = []FieldSpec{reqStr(FieldOp), reqStr(FieldUser)}

// ValidateRequest applies the bridge's checks of §4.2 steps 3 and 5 to a
// request header: op must be present and in the table (ErrUnknownOp);
// every field must be op, user or on the operation's whitelist
// (ErrFieldNotAllowed); every required field must be present
// (ErrMissingField) and every field must have its type (ErrInvalidField);
// P must not exceed the operation's bridge maximum (a *LimitError). For
// sign-rpm with P = 0 the Koji look-up fields are required as well
// (§7.10). It returns the operation's spec.
func ValidateRequest(h *RequestHeader) (OpSpec, error) {
	op, err := h.fields.Str(FieldOp)
	if err != nil {
		return OpSpec{}, err
	}
	spec, ok := LookupOp(op)
	if !ok {
		return OpSpec{}, fmt.Errorf("%w: %q", ErrUnknownOp, op)
	}
	if err := checkWhitelist(h.fields, append(slices.Clone(commonFields), spec.Fields...), "op "+op); err != nil {
		return spec, err
	}
	if h.payloadLen > spec.BridgeMaxPayload {
		return spec, &LimitError{What: "payload length of op " + op, Value: h.payloadLen, Limit: spec.BridgeMaxPayload}
	}
	if op == "sign-rpm" && h.payloadLen == 0 {
		if err := requireAll(h.fields, kojiLookupFields, "sign-rpm with an empty payload (§7.10)"); err != nil {
			return spec, err
		}
	}
	return spec, nil
}

// ValidateSubRequest applies the bridge's checks of §7.7 to one
// sub-request: every field on the whitelist of §7.2, id present, string
// fields safe, P at most BridgeMaxSubRequestPayload, and the Koji look-up
// fields present when P = 0. Uniqueness of id and the running total are
// connection state that the bridge keeps itself.
func ValidateSubRequest(h *SubRequestHeader, payloadLen uint64) error {
	if err := checkWhitelist(h.h.fields, subRequestFieldSpecs, "sub-request"); err != nil {
		return err
	}
	if payloadLen > BridgeMaxSubRequestPayload {
		return &LimitError{What: "sub-request payload length", Value: payloadLen, Limit: BridgeMaxSubRequestPayload}
	}
	if payloadLen == 0 {
		return requireAll(h.h.fields, kojiLookupFields, "a sub-request with an empty payload (§7.2)")
	}
	return nil
}

func checkWhitelist(f Fields, specs []FieldSpec, what string) error {
	for _, fl := range f {
		i := slices.IndexFunc(specs, func(s FieldSpec) bool { return s.Name == fl.Key })
		if i < 0 {
			return fieldErr(fl.Key, ErrFieldNotAllowed, "not allowed in %s", what)
		}
		if err := specs[i].Check(fl.Value); err != nil {
			return err
		}
	}
	for _, s := range specs {
		if s.Required && !f.Has(s.Name) {
			return fieldErr(s.Name, ErrMissingField, "required in %s", what)
		}
	}
	return nil
}

func requireAll(f Fields, names []string, what string) error {
	for _, n := range names {
		if !f.Has(n) {
			return fieldErr(n, ErrMissingField, "required in %s", what)
		}
	}
	return nil
}
