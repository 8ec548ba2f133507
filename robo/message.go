package robo

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fedora-messaging header names and severities.
const (
	hdrSchema   = "fedora_messaging_schema"
	hdrSeverity = "fedora_messaging_severity"
	hdrSentAt   = "sent-at"

	severityInfo  = 20
	severityError = 40

	// hdrAttempt counts the deliveries a message has had before this one
	// (retries); hdrRoutingKey and hdrExchange keep where it was first
	// published, since a retried message comes back from the retry queue
	// through the default exchange.
	hdrAttempt    = "x-signet-attempt"
	hdrRoutingKey = "x-signet-routing-key"
	hdrFailure    = "x-signet-failure"
)

// Message is a checked incoming request.
type Message struct {
	ID         string
	RoutingKey string // as first published
	Schema     string
	Kind       string
	Attempt    int // 0 on the first delivery
	Body       []byte
	ReplyTo    string
	delivery   amqp.Delivery
}

// errMalformed marks a message that can never be processed: it is
// rejected without requeue (and so dead-lettered by the queue).
var errMalformed = errors.New("malformed message")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, a...))
}

// parse checks the fedora-messaging envelope of d and finds its kind.
func (r *Robo) parse(d amqp.Delivery) (*Message, error) {
	m := &Message{ID: d.MessageId, RoutingKey: d.RoutingKey, Body: d.Body, ReplyTo: d.ReplyTo, delivery: d}
	if rk, ok := d.Headers[hdrRoutingKey].(string); ok && rk != "" {
		m.RoutingKey = rk
	}
	m.Attempt = headerInt(d.Headers[hdrAttempt])
	if m.ID == "" {
		return m, malformed("no message_id")
	}
	for _, k := range r.kinds {
		for _, pat := range k.cfg.RoutingKeys {
			if topicMatch(pat, m.RoutingKey) {
				m.Kind = k.name
				break
			}
		}
		if m.Kind != "" {
			break
		}
	}
	if m.Kind == "" {
		return m, malformed("routing key %q matches no enabled kind", m.RoutingKey)
	}
	k := r.kindByName(m.Kind)
	ct, _, err := mime.ParseMediaType(d.ContentType)
	if err != nil {
		return m, malformed("content type %q", d.ContentType)
	}
	if !slices.Contains(k.contentTypes, ct) {
		return m, malformed("content type %q, want %s", ct, strings.Join(k.contentTypes, " or "))
	}
	m.Schema, _ = d.Headers[hdrSchema].(string)
	if !slices.Contains(k.cfg.Schemas, m.Schema) {
		return m, malformed("unknown schema %q", m.Schema)
	}
	return m, nil
}

func headerInt(v any) int {
	switch n := v.(type) {
	case int32:
		return int(n)
	case int64:
		return int(n)
	case int:
		return n
	case int16:
		return int(n)
	case int8:
		return int(n)
	case uint8:
		return int(n)
	}
	return 0
}

// topicMatch reports whether routing key matches an AMQP topic pattern:
// words separated by dots, "*" one word, "#" zero or more words.
func topicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	for len(p) > 0 {
		if p[0] == "#" {
			for i := 0; i <= len(k); i++ {
				if matchWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		}
		if len(k) == 0 || (p[0] != "*" && p[0] != k[0]) {
			return false
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// publication is a message to publish once the work is done.
type publication struct {
	exchange, key string
	msg           amqp.Publishing
}

// newJSONMessage builds a message following fedora-messaging's
// conventions: a JSON body, a UUID message id, the schema, severity and
// sent-at headers, persistent delivery.
func newJSONMessage(body any, severity int) (amqp.Publishing, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return amqp.Publishing{}, err
	}
	now := time.Now().UTC()
	return amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Persistent,
		MessageId:       newUUID(),
		Timestamp:       now,
		Headers: amqp.Table{
			hdrSchema:   "base.message",
			hdrSeverity: int32(severity),
			hdrSentAt:   now.Format("2006-01-02T15:04:05.000000-07:00"),
		},
		Body: b,
	}, nil
}

// finished builds the <routing key>.finished message (or the reply to
// ReplyTo, when the request names one).
func (r *Robo) finished(m *Message, body any, ok bool) (publication, error) {
	sev := severityInfo
	if !ok {
		sev = severityError
	}
	msg, err := newJSONMessage(body, sev)
	if err != nil {
		return publication{}, err
	}
	msg.CorrelationId = m.ID
	if m.ReplyTo != "" {
		return publication{exchange: "", key: m.ReplyTo, msg: msg}, nil
	}
	return publication{exchange: r.cfg.AMQP.Exchange, key: m.RoutingKey + ".finished", msg: msg}, nil
}

// requeued is a copy of d for the retry or dead-letter exchange, with its
// attempt count and first routing key in headers.
func requeued(m *Message, attempt int, failure string) amqp.Publishing {
	d := m.delivery
	h := amqp.Table{}
	for k, v := range d.Headers {
		if k == "x-death" || k == "x-first-death-exchange" || k == "x-first-death-queue" || k == "x-first-death-reason" {
			continue
		}
		h[k] = v
	}
	h[hdrAttempt] = int32(attempt)
	h[hdrRoutingKey] = m.RoutingKey
	if failure != "" {
		h[hdrFailure] = truncate(failure, 1000)
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
