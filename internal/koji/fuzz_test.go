package koji

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeResponse: a hub's reply is input from another machine. Whatever
// decodeResponse accepts is nested no deeper than maxDepth, is a value the
// client can write back (encodeCall), and decodes from that again to the
// same value; the typed decoders take any struct without panicking.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`<?xml version='1.0'?><methodResponse><params><param><value><struct>` +
			`<member><name>id</name><value><int>1234</int></value></member>` +
			`<member><name>build_id</name><value><i8>4294967296</i8></value></member>` +
			`<member><name>name</name><value><string>zlib</string></value></member>` +
			`<member><name>epoch</name><value><nil/></value></member>` +
			`<member><name>version</name><value>1.2.8</value></member>` +
			`<member><name>release</name><value><string>10.fc24</string></value></member>` +
			`<member><name>arch</name><value><string>i686</string></value></member>` +
			`<member><name>payloadhash</name><value><string>0123456789abcdef0123456789abcdef</string></value></member>` +
			`<member><name>size</name><value><int>90000</int></value></member>` +
			`</struct></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value>` +
			`<value><double>-1.5e3</double></value><value><base64>aGVs bG8=</base64></value>` +
			`<value><dateTime.iso8601>20261207T19:45:00</dateTime.iso8601></value>` +
			`<value><array><data></data></array></value></data></array></value></param></params></methodResponse>`,
		`<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1000</int></value></member>` +
			`<member><name>faultString</name><value><string>GenericError: no such build</string></value></member>` +
			`</struct></value></fault></methodResponse>`,
		`<methodResponse><params><param><value><nil/></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value>` + strings.Repeat("<array><data><value>", 70) + `x` +
			strings.Repeat("</value></data></array>", 70) + `</value></param></params></methodResponse>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeResponse(data)
		var fault *Fault
		if errors.As(err, &fault) {
			if v != nil {
				t.Fatalf("a fault and a value %T", v)
			}
			return
		}
		if err != nil {
			return
		}
		if d := depthOf(v); d > maxDepth+1 {
			t.Fatalf("accepted a value nested %d deep", d)
		}
		body, err := encodeCall("m", []any{v})
		if err != nil {
			t.Fatalf("decoded %T that cannot be written back: %v", v, err)
		}
		_, args, err := decodeCall(body)
		if err != nil || len(args) != 1 {
			t.Fatalf("re-encoded value does not decode: %v\n%s", err, body)
		}
		if !sameValue(v, args[0]) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", v, args[0])
		}
		typed := func(m map[string]any) {
			rpmInfo(m)
			d := decoder{m: m}
			d.int("id")
			d.optInt("epoch")
			d.optInt64("task_id")
			d.str("name")
			d.optStr("volume_name")
		}
		switch x := v.(type) {
		case map[string]any:
			typed(x)
		case []any:
			for _, e := range x {
				if m, ok := e.(map[string]any); ok {
					typed(m)
				}
			}
		}
	})
}

// FuzzDecodeCall: the hub's side of the same format, which the test hub
// and kojitest use. A call it accepts is written back by encodeCall to one
// that decodes the same.
func FuzzDecodeCall(f *testing.F) {
	for _, args := range [][]any{
		{int64(7), "zlib-1.2.8-10.fc24", Kwargs{"strict": true}},
		{[]byte{0x8e, 0xad, 0xe8, 0x01}, []any{nil, 1.5, time.Date(2026, 12, 7, 19, 45, 0, 0, time.UTC)}},
		{map[string]any{"a": []string{"x", "<&>"}, "b": []int64{math.MaxInt64, -1}}},
	} {
		b, err := encodeCall("getRPM", args)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		method, args, err := decodeCall(data)
		if err != nil {
			return
		}
		for _, a := range args {
			if d := depthOf(a); d > maxDepth+1 {
				t.Fatalf("accepted an argument nested %d deep", d)
			}
		}
		body, err := encodeCall(method, args)
		if err != nil {
			t.Fatalf("decoded call that cannot be written back: %v", err)
		}
		m2, args2, err := decodeCall(body)
		if err != nil || m2 != method || !sameValue(args, args2) {
			t.Fatalf("round trip changed the call (%v):\n%q %#v\n%q %#v", err, method, args, m2, args2)
		}
	})
}

// depthOf is the nesting depth of a decoded value: 1 for a scalar.
func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
	}
	return d + 1
}

// sameValue compares decoded values: NaN equals NaN, times by instant.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !sameValue(e, f) {
				return false
			}
		}
		return true
	}
	return a == b
}
