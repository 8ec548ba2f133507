package koji

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kwargs are Python keyword arguments. Koji passes them as a last struct
// argument carrying "__starstar": true; Call appends them that way.
type Kwargs map[string]any

// maxDepth bounds the nesting of arrays and structs in a response, so a
// hostile hub cannot make the decoder recurse without end.
const maxDepth = 64

// encodeCall writes an XML-RPC methodCall. Values may be nil (Koji's
// <nil/>), bool, the Go integer types (<int>, or <i8> outside 32 bits),
// float64, string, []byte (<base64>), time.Time, []any, []string,
// []int64, []int, map[string]any and Kwargs.
func encodeCall(method string, args []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>")
	if err := xml.EscapeText(&b, []byte(method)); err != nil {
		return nil, err
	}
	b.WriteString("</methodName><params>")
	for i, a := range args {
		b.WriteString("<param>")
		if err := encodeValue(&b, a, 0); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes(), nil
}

func encodeInt(b *bytes.Buffer, v int64) {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		fmt.Fprintf(b, "<int>%d</int>", v)
	} else {
		fmt.Fprintf(b, "<i8>%d</i8>", v)
	}
}

func encodeValue(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return errors.New("value nested too deeply")
	}
	b.WriteString("<value>")
	switch x := v.(type) {
	case nil:
		b.WriteString("<nil/>")
	case bool:
		if x {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case int:
		encodeInt(b, int64(x))
	case int32:
		encodeInt(b, int64(x))
	case int64:
		encodeInt(b, x)
	case uint32:
		encodeInt(b, int64(x))
	case float64:
		b.WriteString("<double>" + strconv.FormatFloat(x, 'g', -1, 64) + "</double>")
	case string:
		if !validXMLString(x) {
			return errors.New("string holds characters XML cannot carry")
		}
		b.WriteString("<string>")
		if err := xml.EscapeText(b, []byte(x)); err != nil {
			return err
		}
		b.WriteString("</string>")
	case []byte:
		b.WriteString("<base64>" + base64.StdEncoding.EncodeToString(x) + "</base64>")
	case time.Time:
		b.WriteString("<dateTime.iso8601>" + x.UTC().Format("20060102T15:04:05") + "</dateTime.iso8601>")
	case []any:
		b.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case []string:
		b.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case []int64:
		b.WriteString("<array><data>")
		for _, e := range x {
			b.WriteString("<value>")
			encodeInt(b, e)
			b.WriteString("</value>")
		}
		b.WriteString("</data></array>")
	case []int:
		b.WriteString("<array><data>")
		for _, e := range x {
			b.WriteString("<value>")
			encodeInt(b, int64(e))
			b.WriteString("</value>")
		}
		b.WriteString("</data></array>")
	case map[string]any:
		if err := encodeStruct(b, x, depth); err != nil {
			return err
		}
	case Kwargs:
		m := make(map[string]any, len(x)+1)
		for k, e := range x {
			m[k] = e
		}
		m["__starstar"] = true
		if err := encodeStruct(b, m, depth); err != nil {
			return err
		}
	default:
		return fmt.Errorf("cannot encode a %T in XML-RPC", v)
	}
	b.WriteString("</value>")
	return nil
}

// validXMLString reports whether s holds only characters XML 1.0 allows.
func validXMLString(s string) bool {
	for _, r := range s {
		if !(r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)) {
			return false
		}
	}
	return true
}

func encodeStruct(b *bytes.Buffer, m map[string]any, depth int) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable output, easier to test and to read in logs
	b.WriteString("<struct>")
	for _, k := range keys {
		if !validXMLString(k) {
			return errors.New("struct key holds characters XML cannot carry")
		}
		b.WriteString("<member><name>")
		if err := xml.EscapeText(b, []byte(k)); err != nil {
			return err
		}
		b.WriteString("</name>")
		if err := encodeValue(b, m[k], depth+1); err != nil {
			return fmt.Errorf("member %q: %w", k, err)
		}
		b.WriteString("</member>")
	}
	b.WriteString("</struct>")
	return nil
}

// Fault is an XML-RPC fault returned by the hub, with the method that
// raised it. Koji's codes are in koji/__init__.py (1000 GenericError, ...).
type Fault struct {
	Method string
	Code   int
	String string
}

func (f *Fault) Error() string {
	return fmt.Sprintf("koji %s: fault %d: %s", f.Method, f.Code, f.String)
}

// decodeResponse parses a methodResponse: its one value, or a *Fault
// (without Method, which the caller fills in).
func decodeResponse(data []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	p := &parser{d: d}
	if err := p.open("methodResponse"); err != nil {
		return nil, err
	}
	name, err := p.next()
	if err != nil {
		return nil, err
	}
	switch name {
	case "params":
		if err := p.open("param"); err != nil {
			return nil, err
		}
		if err := p.open("value"); err != nil {
			return nil, err
		}
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		for _, end := range []string{"param", "params", "methodResponse"} {
			if err := p.close(end); err != nil {
				return nil, err
			}
		}
		return v, p.eof()
	case "fault":
		if err := p.open("value"); err != nil {
			return nil, err
		}
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		for _, end := range []string{"fault", "methodResponse"} {
			if err := p.close(end); err != nil {
				return nil, err
			}
		}
		if err := p.eof(); err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("xml-rpc: fault is not a struct")
		}
		code, ok1 := m["faultCode"].(int64)
		str, ok2 := m["faultString"].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("xml-rpc: fault without faultCode or faultString")
		}
		return nil, &Fault{Code: int(code), String: str}
	default:
		return nil, fmt.Errorf("xml-rpc: unexpected <%s> in methodResponse", name)
	}
}

type parser struct {
	d *xml.Decoder
	// text is the character data seen by the last call to next.
	text []byte
}

// next returns the name of the next start element, skipping whitespace.
// It fails on an end element or non-space text.
func (p *parser) next() (string, error) {
	p.text = p.text[:0]
	for {
		tok, err := p.d.Token()
		if err != nil {
			return "", fmt.Errorf("xml-rpc: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(bytes.TrimSpace(p.text)) != 0 {
				return "", errors.New("xml-rpc: unexpected text")
			}
			return t.Name.Local, nil
		case xml.EndElement:
			return "", fmt.Errorf("xml-rpc: unexpected </%s>", t.Name.Local)
		case xml.CharData:
			p.text = append(p.text, t...)
		case xml.ProcInst, xml.Comment:
		case xml.Directive:
			return "", errors.New("xml-rpc: directives are not accepted")
		}
	}
}

func (p *parser) open(name string) error {
	got, err := p.next()
	if err != nil {
		return err
	}
	if got != name {
		return fmt.Errorf("xml-rpc: <%s> where <%s> was expected", got, name)
	}
	return nil
}

// close consumes whitespace up to the end element name.
func (p *parser) close(name string) error {
	for {
		tok, err := p.d.Token()
		if err != nil {
			return fmt.Errorf("xml-rpc: %w", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if t.Name.Local != name {
				return fmt.Errorf("xml-rpc: </%s> where </%s> was expected", t.Name.Local, name)
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("xml-rpc: unexpected text")
			}
		case xml.StartElement:
			return fmt.Errorf("xml-rpc: unexpected <%s>", t.Name.Local)
		case xml.ProcInst, xml.Comment:
		default:
			return errors.New("xml-rpc: unexpected token")
		}
	}
}

func (p *parser) eof() error {
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("xml-rpc: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("xml-rpc: text after the response")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return errors.New("xml-rpc: data after the response")
		}
	}
}

// textUntil reads character data up to the end element name.
func (p *parser) textUntil(name string) (string, error) {
	var s []byte
	for {
		tok, err := p.d.Token()
		if err != nil {
			return "", fmt.Errorf("xml-rpc: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			s = append(s, t...)
		case xml.EndElement:
			if t.Name.Local != name {
				return "", fmt.Errorf("xml-rpc: </%s> inside <%s>", t.Name.Local, name)
			}
			return string(s), nil
		case xml.Comment, xml.ProcInst:
		default:
			return "", fmt.Errorf("xml-rpc: element inside <%s>", name)
		}
	}
}

// value decodes the content of a <value> whose start tag was read, through
// its end tag. Types: nil, bool, int64, float64, string, []byte,
// time.Time, []any and map[string]any.
func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("xml-rpc: value nested too deeply")
	}
	var s []byte
	var typ string
	for typ == "" {
		tok, err := p.d.Token()
		if err != nil {
			return nil, fmt.Errorf("xml-rpc: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			s = append(s, t...)
		case xml.EndElement:
			// <value>text</value> is a string.
			return string(s), nil
		case xml.StartElement:
			if len(bytes.TrimSpace(s)) != 0 {
				return nil, errors.New("xml-rpc: text beside a typed value")
			}
			typ = t.Name.Local
		case xml.Comment, xml.ProcInst:
		default:
			return nil, errors.New("xml-rpc: unexpected token in <value>")
		}
	}
	var v any
	switch typ {
	case "nil":
		if err := p.close("nil"); err != nil {
			return nil, err
		}
	case "struct":
		m := map[string]any{}
		for {
			tok, err := p.d.Token()
			if err != nil {
				return nil, fmt.Errorf("xml-rpc: %w", err)
			}
			if e, ok := tok.(xml.EndElement); ok {
				if e.Name.Local != "struct" {
					return nil, fmt.Errorf("xml-rpc: </%s> in <struct>", e.Name.Local)
				}
				break
			}
			st, ok := tok.(xml.StartElement)
			if !ok {
				if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) != 0 {
					return nil, errors.New("xml-rpc: text in <struct>")
				}
				continue
			}
			if st.Name.Local != "member" {
				return nil, fmt.Errorf("xml-rpc: <%s> in <struct>", st.Name.Local)
			}
			if err := p.open("name"); err != nil {
				return nil, err
			}
			key, err := p.textUntil("name")
			if err != nil {
				return nil, err
			}
			if err := p.open("value"); err != nil {
				return nil, err
			}
			mv, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := p.close("member"); err != nil {
				return nil, err
			}
			m[key] = mv
		}
		v = m
	case "array":
		if err := p.open("data"); err != nil {
			return nil, err
		}
		a := []any{}
		for {
			tok, err := p.d.Token()
			if err != nil {
				return nil, fmt.Errorf("xml-rpc: %w", err)
			}
			if e, ok := tok.(xml.EndElement); ok {
				if e.Name.Local != "data" {
					return nil, fmt.Errorf("xml-rpc: </%s> in <data>", e.Name.Local)
				}
				break
			}
			st, ok := tok.(xml.StartElement)
			if !ok {
				if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) != 0 {
					return nil, errors.New("xml-rpc: text in <data>")
				}
				continue
			}
			if st.Name.Local != "value" {
				return nil, fmt.Errorf("xml-rpc: <%s> in <data>", st.Name.Local)
			}
			e, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, e)
		}
		if err := p.close("array"); err != nil {
			return nil, err
		}
		v = a
	default:
		text, err := p.textUntil(typ)
		if err != nil {
			return nil, err
		}
		switch typ {
		case "string":
			v = text
		case "int", "i4", "i8":
			n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("xml-rpc: bad <%s>: %w", typ, err)
			}
			v = n
		case "boolean":
			switch strings.TrimSpace(text) {
			case "0":
				v = false
			case "1":
				v = true
			default:
				return nil, fmt.Errorf("xml-rpc: bad <boolean> %q", text)
			}
		case "double":
			f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
			if err != nil {
				return nil, fmt.Errorf("xml-rpc: bad <double>: %w", err)
			}
			v = f
		case "base64":
			raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
			if err != nil {
				return nil, fmt.Errorf("xml-rpc: bad <base64>: %w", err)
			}
			v = raw
		case "dateTime.iso8601":
			t, err := parseISO8601(strings.TrimSpace(text))
			if err != nil {
				return nil, err
			}
			v = t
		default:
			return nil, fmt.Errorf("xml-rpc: unknown type <%s>", typ)
		}
	}
	if err := p.close("value"); err != nil {
		return nil, err
	}
	return v, nil
}

func parseISO8601(s string) (time.Time, error) {
	for _, layout := range []string{"20060102T15:04:05", "2006-01-02T15:04:05", "20060102T150405"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("xml-rpc: bad <dateTime.iso8601> %q", s)
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// decodeCall parses a methodCall: the hub's side, for tests and fuzzing.
func decodeCall(data []byte) (string, []any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	p := &parser{d: d}
	if err := p.open("methodCall"); err != nil {
		return "", nil, err
	}
	if err := p.open("methodName"); err != nil {
		return "", nil, err
	}
	method, err := p.textUntil("methodName")
	if err != nil {
		return "", nil, err
	}
	args := []any{}
	if err := p.open("params"); err != nil {
		return "", nil, err
	}
	for {
		tok, err := p.d.Token()
		if err != nil {
			return "", nil, fmt.Errorf("xml-rpc: %w", err)
		}
		if e, ok := tok.(xml.EndElement); ok {
			if e.Name.Local != "params" {
				return "", nil, fmt.Errorf("xml-rpc: </%s> in <params>", e.Name.Local)
			}
			break
		}
		st, ok := tok.(xml.StartElement)
		if !ok {
			if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) != 0 {
				return "", nil, errors.New("xml-rpc: text in <params>")
			}
			continue
		}
		if st.Name.Local != "param" {
			return "", nil, fmt.Errorf("xml-rpc: <%s> in <params>", st.Name.Local)
		}
		if err := p.open("value"); err != nil {
			return "", nil, err
		}
		v, err := p.value(0)
		if err != nil {
			return "", nil, err
		}
		if err := p.close("param"); err != nil {
			return "", nil, err
		}
		args = append(args, v)
	}
	if err := p.close("methodCall"); err != nil {
		return "", nil, err
	}
	return method, args, p.eof()
}
