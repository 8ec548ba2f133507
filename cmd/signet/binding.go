package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// Sigul can bind a key passphrase to hardware: on the server (-b, the
// server wraps the stored passphrase with a TPM, a PKCS#11 token...) or on
// the client (-c with -w: the client makes a random passphrase, binds it
// locally and writes the bound form to a file, later given with -f).
// signet keeps every key in a token and wraps the token PIN per key and
// user under the user's passphrase, so it offers no binding methods of its
// own: the client supports none, and signet's server lists none.

// clientBindingMethods are the binding methods signet's client supports.
var clientBindingMethods []string

// supportedNames is a list of method names for a message.
func supportedNames(methods []string) string {
	if len(methods) == 0 {
		return "none"
	}
	return strings.Join(methods, ", ")
}

// bindingFlags are grant-key-access's and change-passphrase's options.
type bindingFlags struct {
	server, client []string
	writeFile      string
}

func (b *bindingFlags) add(c *cobra.Command) {
	f := c.Flags()
	f.StringArrayVarP(&b.server, "server-binding-method", "b", nil,
		"Method used to bind this passphrase to server, METHOD[,ARG=VALUE...][|METHOD...]; repeat for more levels (see list-server-binding-methods)")
	f.StringArrayVarP(&b.client, "client-binding-method", "c", nil,
		"Method used to bind this passphrase on the client (see list-binding-methods; signet's client supports none)")
	f.StringVarP(&b.writeFile, "write-passphrase-file", "w", "",
		"File to store bound passphrase (only with --client-binding-method, and required by it)")
}

// check applies Sigul's rules and returns the server-binding field's JSON
// ("" when -b was not given). A client binding method is refused, naming
// the ones signet's client supports; server methods are the server's to
// accept or refuse.
func (b *bindingFlags) check(c *cobra.Command) (serverJSON string, err error) {
	clientSet := c.Flags().Changed("client-binding-method")
	switch {
	case b.writeFile != "" && !clientSet:
		return "", usagef("Passphrase file only accepted with client-side binding")
	case b.writeFile == "" && clientSet:
		return "", usagef("Client-side binding requires a passphrase file")
	}
	if b.writeFile != "" {
		if _, err := os.Lstat(b.writeFile); err == nil {
			return "", usagef("Output passphrase file exists")
		}
	}
	cl, err := parseBindings(b.client)
	if err != nil {
		return "", usagef("Error in client binding config: %v", err)
	}
	var sv [][]map[string]string
	if c.Flags().Changed("server-binding-method") {
		if sv, err = parseBindings(b.server); err != nil {
			return "", usagef("Error in server binding config: %v", err)
		}
	}
	for _, level := range cl {
		for _, m := range level {
			return "", usagef("client binding method %q is not supported: signet's client supports %s (see list-binding-methods)",
				m["method"], supportedNames(clientBindingMethods))
		}
	}
	if clientSet {
		// Only empty -c values: Sigul would then bind with its configured
		// default methods, which signet's client does not have.
		return "", usagef("client-side binding is not supported: signet's client supports %s binding methods", supportedNames(clientBindingMethods))
	}
	if !c.Flags().Changed("server-binding-method") {
		return "", nil
	}
	js, err := pythonJSON(sv)
	if err != nil {
		return "", err
	}
	if len(js) > 255 {
		return "", usagef("server binding description is %d bytes long; the protocol carries at most 255", len(js))
	}
	return js, nil
}

// parseBindings reads Sigul's binding syntax: each option value is one
// level, alternatives separated by "|", each METHOD[,KEY=VALUE...]. Empty
// values are skipped; an empty result asks for the default methods.
func parseBindings(list []string) ([][]map[string]string, error) {
	out := [][]map[string]string{}
	for _, entry := range list {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		var level []map[string]string
		for _, alt := range strings.Split(entry, "|") {
			method, args, _ := strings.Cut(alt, ",")
			m := map[string]string{"method": method}
			for _, arg := range strings.Split(args, ",") {
				if arg == "" {
					continue
				}
				k, v, ok := strings.Cut(arg, "=")
				if !ok {
					//lint:ignore ST1005 Sigul's client says the same, capitalized
					return nil, fmt.Errorf("Argument %s is not key=value", arg)
				}
				m[k] = v
			}
			level = append(level, m)
		}
		out = append(out, level)
	}
	return out, nil
}

// pythonJSON encodes v as Python's json.dumps does by default (", " and
// ": " separators), which is what Sigul's client sends.
func pythonJSON(v [][]map[string]string) (string, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, level := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('[')
		for j, m := range level {
			if j > 0 {
				b.WriteString(", ")
			}
			// "method" first, then the arguments in the order given is
			// what Python keeps; map order is lost here, so sort the
			// arguments after "method" (the server reads them by name).
			b.WriteByte('{')
			keys := []string{"method"}
			for k := range m {
				if k != "method" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys[1:])
			for n, k := range keys {
				if n > 0 {
					b.WriteString(", ")
				}
				kj, _ := json.Marshal(k)
				vj, _ := json.Marshal(m[k])
				b.Write(kj)
				b.WriteString(": ")
				b.Write(vj)
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	if !json.Valid(b.Bytes()) {
		return "", errors.New("internal error: invalid binding JSON")
	}
	return b.String(), nil
}

// boundPassphrase reports whether a passphrase file's content is a
// passphrase bound by Sigul (a JSON list or object naming methods), and
// the first method it names.
func boundPassphrase(b []byte) (method string, bound bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '[' && t[0] != '{' {
		return "", false
	}
	var list []map[string]any
	if t[0] == '{' {
		var one map[string]any
		if json.Unmarshal(t, &one) != nil {
			return "", false
		}
		list = []map[string]any{one}
	} else if json.Unmarshal(t, &list) != nil {
		return "", false
	}
	for _, e := range list {
		if m, ok := e["method"].(string); ok {
			return m, true
		}
	}
	return "", false
}
