package protocol

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for bad input wraps one
// of them (or io.EOF / io.ErrUnexpectedEOF for streams that end), so callers
// can classify failures with errors.Is without parsing messages.
var (
	// ErrIntegrity means a MAC or hash did not verify: a reply or
	// sub-protocol MAC (§6.1, §7.2, §7.3) or an inner-message hash (§4.3).
	// The concrete error is an *IntegrityError.
	ErrIntegrity = errors.New("protocol: integrity check failed")

	// ErrMalformed means bytes that do not follow the wire format: a bad
	// field block, a chunk after its stream's EOF marker, trailing bytes.
	// The concrete error is a *MalformedError.
	ErrMalformed = errors.New("protocol: malformed data")

	// ErrLimit means a length or count above a limit of the specification
	// or of the caller. The concrete error is a *LimitError.
	ErrLimit = errors.New("protocol: limit exceeded")

	// ErrUnknownVersion means a request whose protocol version is not 1
	// (§4.2 step 1, §4.3 step 1). The concrete error is a *VersionError.
	ErrUnknownVersion = errors.New("protocol: unknown protocol version")

	// ErrMissingField means a required field is absent. The concrete
	// error is a *FieldError.
	ErrMissingField = errors.New("protocol: required field missing")

	// ErrInvalidField means a field value of the wrong type or form (§3.3).
	// The concrete error is a *FieldError.
	ErrInvalidField = errors.New("protocol: invalid field value")

	// ErrFieldNotAllowed means a request or sub-request field that is not
	// on the operation's whitelist (§4.4, §7.2). The concrete error is a
	// *FieldError.
	ErrFieldNotAllowed = errors.New("protocol: field not allowed")

	// ErrUnknownOp means an op value that is not in the operation table
	// (§4.2 step 3).
	ErrUnknownOp = errors.New("protocol: unknown operation")

	// ErrShortKey means a MAC base key shorter than minKeyLen bytes
	// (§4.3 step 9, §7.1 step 2). The concrete error is a *FieldError.
	ErrShortKey = errors.New("protocol: MAC key shorter than 64 bytes")

	// ErrStreamEnded means a write to a stream after its EOF marker was
	// sent (§2.2), or a read of a stream the caller discarded.
	ErrStreamEnded = errors.New("protocol: stream already ended")

	// ErrEmptyChunk means an attempt to write a data chunk of length 0,
	// which would be an EOF marker (§2.2).
	ErrEmptyChunk = errors.New("protocol: empty data chunk")
)

// IntegrityError reports a MAC or hash that did not verify. What names the
// item, for example "reply header MAC" or "sub-reply 3 payload MAC". It
// never contains key or MAC bytes.
type IntegrityError struct {
	What string
}

// Error names the item that failed to verify.
func (e *IntegrityError) Error() string { return "protocol: " + e.What + " does not verify" }

// Unwrap returns ErrIntegrity.
func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// MalformedError reports bytes that break the wire format. Item names what
// was being decoded; Reason says what was wrong and where.
type MalformedError struct {
	Item   string
	Reason string
}

// Error says what was malformed and why.
func (e *MalformedError) Error() string { return "protocol: malformed " + e.Item + ": " + e.Reason }

// Unwrap returns ErrMalformed.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// LimitError reports a length or count above a limit. Value is what was
// seen (or would have been reached), Limit the maximum allowed.
type LimitError struct {
	What  string
	Value uint64
	Limit uint64
}

// Error gives the value and the limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("protocol: %s %d exceeds the limit of %d", e.What, e.Value, e.Limit)
}

// Unwrap returns ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// VersionError reports a request protocol version other than
// protocolVersion.
type VersionError struct {
	Version uint32
}

// Error gives the version received.
func (e *VersionError) Error() string {
	return fmt.Sprintf("protocol: request protocol version %d, only version %d is supported", e.Version, protocolVersion)
}

// Unwrap returns ErrUnknownVersion.
func (e *VersionError) Unwrap() error { return ErrUnknownVersion }

// FieldError reports a problem with one field. Err is one of
// ErrMissingField, ErrInvalidField, ErrFieldNotAllowed or ErrShortKey.
// Reason never contains the field's value, which may be a secret.
type FieldError struct {
	Key    string
	Err    error
	Reason string
}

// Error names the field and the problem, never its value.
func (e *FieldError) Error() string {
	msg := fmt.Sprintf("protocol: field %q: ", e.Key)
	if e.Reason != "" {
		return msg + e.Reason
	}
	return msg + e.Err.Error()
}

// Unwrap returns the sentinel in Err.
func (e *FieldError) Unwrap() error { return e.Err }

func malformed(item, format string, args ...any) error {
	return &MalformedError{Item: item, Reason: fmt.Sprintf(format, args...)}
}

func fieldErr(key string, sentinel error, format string, args ...any) error {
	return &FieldError{Key: key, Err: sentinel, Reason: fmt.Sprintf(format, args...)}
}
