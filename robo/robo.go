// Package robo is signet-robo, the automatic signer: it consumes signing
// requests from an AMQP 0-9-1 broker (RabbitMQ) following the
// fedora-messaging conventions, signs through the signet client library,
// and publishes the outcome.
//
// Delivery guarantees. A message is acknowledged only after its work is
// durably done: outputs renamed into place (or stored by HTTP PUT) and the
// finished message confirmed by the broker (publisher confirms). A
// malformed message is rejected without requeue; the queue dead-letters it
// to the configured exchange. A transient failure (the bridge unreachable,
// a fetch that failed) is republished, confirmed, to a retry queue whose
// messages expire after the retry delay back into the main queue, with an
// attempt count in a header; after max_attempts it is published to the
// dead-letter exchange instead (and a FAILURE finished message answers
// it). Only then is the delivery acknowledged, so a crash at any point
// loses nothing; it may redeliver, which is harmless: artifacts-sign skips
// an artifact whose signature by the key is already in place, and the
// other kinds rewrite the same results.
package robo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/signet-project/signet/client"
	"github.com/signet-project/signet/internal/fileperm"
	"github.com/signet-project/signet/internal/secret"
)

// Signer is what robo needs from the signet client; *client.Client
// implements it.
type Signer interface {
	SignData(ctx context.Context, req client.SignDataRequest, out io.Writer) error
	SignRPMs(ctx context.Context, opts client.SignRPMOptions, files []client.RPMFile) ([]client.RPMResult, error)
	SignPE(ctx context.Context, req client.SignPERequest, out io.Writer) error
	GetPublicKey(ctx context.Context, req client.GetPublicKeyRequest, out io.Writer) error
	SignOSTree(ctx context.Context, req client.SignOSTreeRequest, out io.Writer) error
}

// handler processes one message of a kind. It returns the finished
// message's body and whether the work succeeded; a non-nil error is
// either malformed (reject) or transient (retry later). A nil body with
// no error acknowledges the message without answering it (a tagging or
// ref this signer does not handle).
type handler func(ctx context.Context, m *Message) (reply any, ok bool, err error)

type kind struct {
	name         string
	cfg          *KindConfig
	contentTypes []string
	handle       handler
}

// Robo consumes and signs. Use New, then Run.
type Robo struct {
	cfg    *Config
	signer Signer
	log    *slog.Logger
	kinds  []*kind
	m      *metrics
	http   *http.Client

	// passphrases by key name, read once from their files.
	passphrases map[string][]byte
	certNames   map[string]string

	pubMu   sync.Mutex
	pubKeys map[string][]byte // armored public keys, by key name

	// tag-sign: the rules, and how Koji sessions are opened.
	tagRules *tagRules
	kojiDial KojiDialer
}

// New checks cfg (as LoadConfig left it), reads the passphrase files and
// returns a Robo that signs with s.
func New(cfg *Config, s Signer, log *slog.Logger) (*Robo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Robo{cfg: cfg, signer: s, log: log, m: newMetrics(), passphrases: map[string][]byte{},
		certNames: map[string]string{}, pubKeys: map[string][]byte{},
		http: httpClient()}
	add := func(name string, kc *KindConfig, ct []string, h handler) error {
		if !kc.Enabled {
			return nil
		}
		keys := kc.Keys
		if len(keys) == 0 {
			keys = []KeyConfig{{Name: kc.Key, PassphraseFile: kc.PassphraseFile, CertName: kc.CertName}}
		}
		for _, k := range keys {
			p, err := secret.ReadFile(k.PassphraseFile, "passphrase for key "+k.Name)
			if err != nil {
				return fmt.Errorf("[%s] %w", name, err)
			}
			if old, ok := r.passphrases[k.Name]; ok && string(old) != string(p) {
				return fmt.Errorf("[%s] key %s has two different passphrase files", name, k.Name)
			}
			r.passphrases[k.Name] = p
			if k.CertName != "" {
				r.certNames[k.Name] = k.CertName
			}
		}
		r.kinds = append(r.kinds, &kind{name: name, cfg: kc, contentTypes: ct, handle: h})
		return nil
	}
	jsonCT := []string{"application/json"}
	if err := errors.Join(
		add(KindArtifacts, &cfg.Artifacts, jsonCT, r.handleArtifacts),
		add(KindPackages, &cfg.Packages, jsonCT, r.handlePackages),
		add(KindXML, &cfg.XML, []string{"application/xml", "text/xml"}, r.handleXML),
		r.addTag(jsonCT),
		r.addOSTree(jsonCT),
	); err != nil {
		return nil, err
	}
	return r, nil
}

// addPassphrase reads key's passphrase file once; two kinds naming the
// same key must name the same passphrase.
func (r *Robo) addPassphrase(where, key, file string) error {
	p, err := secret.ReadFile(file, "passphrase for key "+key)
	if err != nil {
		return fmt.Errorf("[%s] %w", where, err)
	}
	if old, ok := r.passphrases[key]; ok && string(old) != string(p) {
		return fmt.Errorf("[%s] key %s has two different passphrase files", where, key)
	}
	r.passphrases[key] = p
	return nil
}

// addTag sets up the tag-sign kind, if enabled.
func (r *Robo) addTag(ct []string) error {
	c := &r.cfg.Tag
	if !c.Enabled {
		return nil
	}
	var err error
	if r.tagRules, err = newTagRules(c); err != nil {
		return fmt.Errorf("[tag_sign] %w", err)
	}
	for _, rule := range c.Rules {
		if err := r.addPassphrase("tag_sign", rule.Key, rule.PassphraseFile); err != nil {
			return err
		}
		if rule.FileSigningKey != "" {
			if err := r.addPassphrase("tag_sign", rule.FileSigningKey, rule.FileSigningPassphraseFile); err != nil {
				return err
			}
		}
	}
	r.kojiDial = dialKoji
	r.kinds = append(r.kinds, &kind{name: KindTag, cfg: &KindConfig{Enabled: true, RoutingKeys: c.RoutingKeys, Schemas: c.Schemas},
		contentTypes: ct, handle: r.handleTag})
	return nil
}

// addOSTree sets up the ostree-sign kind, if enabled.
func (r *Robo) addOSTree(ct []string) error {
	c := &r.cfg.OSTree
	if !c.Enabled {
		return nil
	}
	for _, rc := range c.Refs {
		if err := r.addPassphrase("ostree_sign", rc.Key, rc.PassphraseFile); err != nil {
			return err
		}
	}
	r.kinds = append(r.kinds, &kind{name: KindOSTree, cfg: &KindConfig{Enabled: true, RoutingKeys: c.RoutingKeys, Schemas: c.Schemas},
		contentTypes: ct, handle: r.handleOSTree})
	return nil
}

// SetKojiDialer replaces how Koji sessions are opened (tests).
func (r *Robo) SetKojiDialer(d KojiDialer) { r.kojiDial = d }

// httpClient fetches artifacts and stores signatures. Artifacts may be
// large, so there is no overall deadline; a server that does not answer
// within a minute, or a connection that cannot be made within 30 s, is a
// transient failure.
func httpClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t, CheckRedirect: checkRedirect}
}

// passphrase returns a fresh copy of key's passphrase: the client zeroes
// what it is given.
func (r *Robo) passphrase(key string) []byte {
	return append([]byte(nil), r.passphrases[key]...)
}

func (r *Robo) kindByName(name string) *kind {
	for _, k := range r.kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// Run consumes until ctx is cancelled, reconnecting with backoff whenever
// the broker goes away. On cancellation it stops consuming, lets the work
// in flight finish (up to amqp.shutdown_timeout), then closes.
func (r *Robo) Run(ctx context.Context) error {
	a := &r.cfg.AMQP
	backoff := a.reconnectMin
	for {
		established, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			backoff = a.reconnectMin
		}
		r.m.reconnects.Inc()
		r.log.Warn("broker connection lost; reconnecting", "err", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if !established {
			backoff = min(2*backoff, a.reconnectMax)
		}
	}
}

func (r *Robo) dial() (*amqp.Connection, error) {
	a := &r.cfg.AMQP
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(30 * time.Second),
		Properties: amqp.Table{"connection_name": "signet-robo", "product": "signet-robo"}}
	if strings.HasPrefix(a.URL, "amqps://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.TLS.ServerName}
		if a.TLS.CA != "" {
			pem, err := os.ReadFile(a.TLS.CA)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no PEM certificate", a.TLS.CA)
			}
		}
		if a.TLS.Cert != "" {
			if err := fileperm.CheckPrivate(a.TLS.Key, "AMQP client key"); err != nil {
				return nil, err
			}
			c, err := tls.LoadX509KeyPair(a.TLS.Cert, a.TLS.Key)
			if err != nil {
				return nil, err
			}
			tc.Certificates = []tls.Certificate{c}
		}
		cfg.TLSClientConfig = tc
		if a.TLS.External {
			cfg.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
		}
	}
	return amqp.DialConfig(a.URL, cfg)
}

// retryQueue is the queue where retried messages wait out the delay.
func (r *Robo) retryQueue() string { return r.cfg.AMQP.Queue + ".retry" }

// declare sets up the exchanges, queues and bindings. It is idempotent.
func (r *Robo) declare(ch *amqp.Channel) error {
	a := &r.cfg.AMQP
	if err := ch.ExchangeDeclare(a.DeadLetterExchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring the dead-letter exchange: %w", err)
	}
	if a.DeadLetterQueue != "" {
		if _, err := ch.QueueDeclare(a.DeadLetterQueue, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring the dead-letter queue: %w", err)
		}
		if err := ch.QueueBind(a.DeadLetterQueue, "#", a.DeadLetterExchange, false, nil); err != nil {
			return err
		}
	}
	if _, err := ch.QueueDeclare(a.Queue, true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": a.DeadLetterExchange,
	}); err != nil {
		return fmt.Errorf("declaring queue %s: %w", a.Queue, err)
	}
	if _, err := ch.QueueDeclare(r.retryQueue(), true, false, false, false, amqp.Table{
		"x-message-ttl":             a.retryDelay.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": a.Queue,
	}); err != nil {
		return fmt.Errorf("declaring queue %s: %w", r.retryQueue(), err)
	}
	for _, k := range r.kinds {
		for _, rk := range k.cfg.RoutingKeys {
			if err := ch.QueueBind(a.Queue, rk, a.Exchange, false, nil); err != nil {
				return fmt.Errorf("binding %s to %s: %w", rk, a.Exchange, err)
			}
		}
	}
	return nil
}

// publisher publishes with confirms on its own channel.
type publisher struct {
	ch      *amqp.Channel
	timeout time.Duration
}

func (p *publisher) publish(ctx context.Context, pubs ...publication) error {
	var dcs []*amqp.DeferredConfirmation
	for _, pb := range pubs {
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, pb.exchange, pb.key, false, false, pb.msg)
		if err != nil {
			return fmt.Errorf("publishing to %q (%s): %w", pb.exchange, pb.key, err)
		}
		dcs = append(dcs, dc)
	}
	wctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	for i, dc := range dcs {
		ok, err := dc.WaitContext(wctx)
		if err != nil {
			return fmt.Errorf("waiting for the broker's confirm of %s: %w", pubs[i].key, err)
		}
		if !ok {
			return fmt.Errorf("the broker refused (nack) %s", pubs[i].key)
		}
	}
	return nil
}

// session runs one connection: declare, consume, dispatch. It returns
// when the connection is lost or ctx is cancelled (after the work in
// flight finished). established reports whether consuming started.
func (r *Robo) session(ctx context.Context) (established bool, err error) {
	a := &r.cfg.AMQP
	conn, err := r.dial()
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	if err := r.declare(ch); err != nil {
		return false, err
	}
	if err := ch.Qos(a.Prefetch, 0, false); err != nil {
		return false, err
	}
	pch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	if err := pch.Confirm(false); err != nil {
		return false, err
	}
	pclosed := pch.NotifyClose(make(chan *amqp.Error, 1))
	pub := &publisher{ch: pch, timeout: a.publishTimeout}
	tag := "signet-robo-" + newUUID()
	deliveries, err := ch.Consume(a.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return false, err
	}
	r.m.connected.Set(1)
	defer r.m.connected.Set(0)
	r.log.Info("consuming", "queue", a.Queue, "exchange", a.Exchange, "prefetch", a.Prefetch, "concurrency", a.Concurrency)

	// Work runs under its own context: shutdown lets it finish, up to
	// shutdown_timeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, a.Concurrency)
	var wg sync.WaitGroup
	drain := func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(a.shutdownTimeout):
			r.log.Warn("shutdown timeout: cancelling the work in flight (it will be redelivered)")
			cancelWork()
			<-done
		}
	}
	for {
		select {
		case <-ctx.Done():
			ch.Cancel(tag, false)
			r.log.Info("stopping: waiting for the work in flight")
			drain()
			return true, nil
		case e := <-closed:
			wg.Wait()
			return true, fmt.Errorf("connection closed: %v", e)
		case e := <-pclosed:
			wg.Wait()
			return true, fmt.Errorf("publishing channel closed: %v", e)
		case d, ok := <-deliveries:
			if !ok {
				wg.Wait()
				return true, errors.New("the broker ended the consumer")
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				// Not started: it goes back to the queue when the
				// channel closes.
				d.Nack(false, true)
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r.process(workCtx, pub, d)
			}()
		}
	}
}

// process handles one delivery from start to acknowledgement.
func (r *Robo) process(ctx context.Context, pub *publisher, d amqp.Delivery) {
	r.m.inFlight.Inc()
	defer r.m.inFlight.Dec()
	m, err := r.parse(d)
	log := r.log.With("message_id", m.ID, "routing_key", m.RoutingKey, "kind", m.Kind, "attempt", m.Attempt+1)
	if err != nil {
		r.reject(log, m, err)
		return
	}
	k := r.kindByName(m.Kind)
	start := time.Now()
	reply, ok, err := k.handle(ctx, m)
	r.m.latency.WithLabelValues(m.Kind).Observe(time.Since(start).Seconds())
	if errors.Is(err, errMalformed) {
		r.reject(log, m, err)
		return
	}
	if err == nil && reply == nil {
		// Not for this signer (a tag or ref not configured): nothing
		// to answer.
		if aerr := d.Ack(false); aerr != nil {
			log.Warn("acknowledging failed; the message will be redelivered", "err", aerr)
			return
		}
		r.m.messages.WithLabelValues(m.Kind, "ignored").Inc()
		log.Debug("ignored")
		return
	}
	if err == nil {
		var p publication
		if p, err = r.finished(m, reply, ok); err == nil {
			err = pub.publish(ctx, p)
		}
		if err == nil {
			if aerr := d.Ack(false); aerr != nil {
				log.Warn("acknowledging failed; the message will be redelivered", "err", aerr)
				return
			}
			outcome := "success"
			if !ok {
				outcome = "failure"
			}
			r.m.messages.WithLabelValues(m.Kind, outcome).Inc()
			log.Info("done", "outcome", outcome, "seconds", time.Since(start).Seconds())
			return
		}
	}
	r.retry(ctx, log, pub, m, err)
}

func (r *Robo) reject(log *slog.Logger, m *Message, err error) {
	kind := m.Kind
	if kind == "" {
		kind = "unknown"
	}
	log.Warn("rejecting a malformed message (not requeued)", "err", err)
	r.m.messages.WithLabelValues(kind, "rejected").Inc()
	if rerr := m.delivery.Reject(false); rerr != nil {
		log.Warn("reject failed", "err", rerr)
	}
}

// retry republishes m to the retry queue, or, after max_attempts, to the
// dead-letter exchange with a FAILURE answer; then it acknowledges m. If
// that publishing fails, m is requeued after a pause (not at once: nothing
// spins), or redelivered when the connection comes back.
func (r *Robo) retry(ctx context.Context, log *slog.Logger, pub *publisher, m *Message, cause error) {
	a := &r.cfg.AMQP
	attempt := m.Attempt + 1
	var pubs []publication
	outcome := "retried"
	if attempt < a.MaxAttempts {
		log.Warn("transient failure; retrying later", "err", cause, "retry_in", a.retryDelay.String())
		pubs = append(pubs, publication{exchange: "", key: r.retryQueue(), msg: requeued(m, attempt, "")})
	} else {
		outcome = "dead_lettered"
		log.Error("giving up: dead-lettering", "err", cause, "attempts", attempt)
		pubs = append(pubs, publication{exchange: a.DeadLetterExchange, key: m.RoutingKey, msg: requeued(m, attempt, cause.Error())})
		body := map[string]any{"status": "FAILURE", "failure-message": fmt.Sprintf("gave up after %d attempts: %v", attempt, cause)}
		if m.Kind != KindXML {
			body = withStatus(m.Body, false, body["failure-message"].(string))
		}
		if p, err := r.finished(m, body, false); err == nil {
			pubs = append(pubs, p)
		}
	}
	if err := pub.publish(ctx, pubs...); err != nil {
		if pub.ch.IsClosed() {
			// The connection is gone: the broker requeues the message
			// itself, and it is redelivered after the reconnection.
			log.Warn("could not republish; the message will be redelivered", "err", err)
			return
		}
		log.Warn("could not republish; the message goes back to the queue after a pause", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(min(a.retryDelay, 5*time.Second)):
		}
		m.delivery.Nack(false, true)
		return
	}
	if outcome == "retried" {
		r.m.retries.WithLabelValues(m.Kind).Inc()
	}
	r.m.messages.WithLabelValues(m.Kind, outcome).Inc()
	if err := m.delivery.Ack(false); err != nil {
		log.Warn("acknowledging failed; the message will be redelivered", "err", err)
	}
}

// isTransient reports whether err, from the client, may pass: anything
// but a refusal by the server (the bridge or the server unreachable, a
// dropped request, a reply that did not verify).
func isTransient(err error) bool {
	var ce *client.Error
	return err != nil && !errors.As(err, &ce)
}

// Logger returns the logger robo writes to.
func (r *Robo) Logger() *slog.Logger { return r.log }
