package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/signet-project/signet/protocol"
)

// serverBindingMethods are the passphrase binding methods signet's server
// supports: none. Sigul's server can bind a stored key passphrase to a TPM
// or a PKCS#11 token; signet keeps the keys themselves in the token and
// stores, per key and user, only the token PIN wrapped under the user's
// passphrase, so there is nothing further to bind.
var serverBindingMethods []string

// listBindingMethods serves list-binding-methods (ADMIN): the names of
// the binding methods the server supports, in the order it registered
// them.
func (h *Handlers) listBindingMethods(ctx context.Context, r *Request) (*Response, error) {
	if err := h.admin(ctx, r); err != nil {
		return nil, err
	}
	return list("num-methods", append([]string(nil), serverBindingMethods...)), nil
}

// checkBindings reads grant-key-access's and change-passphrase's optional
// server-binding and client-binding (JSON, PROTOCOL-v1 §5.2). Invalid JSON
// drops the request, as Sigul's server does; client-binding is only
// informative. A server binding that asks for any method is refused with
// a message naming the supported ones: silently storing an unbound
// passphrase would not be what the caller asked for.
func checkBindings(r *Request) error {
	var sv [][]map[string]any
	for _, name := range []string{"server-binding", "client-binding"} {
		v, ok := r.Secrets[name]
		if !ok {
			continue
		}
		var levels [][]map[string]any
		if err := json.Unmarshal(v, &levels); err != nil {
			// Sigul's client also sent single objects per level before
			// either-or binding; accept that form too.
			var flat []map[string]any
			if err2 := json.Unmarshal(v, &flat); err2 != nil {
				return fmt.Errorf("%w: %s is not a binding description: %v", ErrDrop, name, err)
			}
			for _, m := range flat {
				levels = append(levels, []map[string]any{m})
			}
		}
		if name == "server-binding" {
			sv = levels
		}
	}
	var asked []string
	for _, level := range sv {
		for _, m := range level {
			method, _ := m["method"].(string)
			asked = append(asked, fmt.Sprintf("%q", method))
		}
	}
	if len(asked) == 0 {
		return nil
	}
	supported := "none"
	if len(serverBindingMethods) > 0 {
		supported = strings.Join(serverBindingMethods, ", ")
	}
	return &refusal{status: protocol.CodeUnknownError, message: fmt.Sprintf(
		"server binding method %s is not supported: signet's server supports %s (the passphrase unwraps the token PIN for this key and user only; leave out -b)",
		strings.Join(asked, ", "), supported)}
}
