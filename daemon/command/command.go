// Package command takes MQTT commands addressed to the daemon on
// <prefix>/cmd/<name>: it enforces the size limit, runs one command at a time
// off paho's goroutine, and answers on <prefix>/cmd/<name>/result.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// Handler runs one command's payload and says what it did.
type Handler func(ctx context.Context, payload []byte) (result string, err error)

// Publisher sends the answers.
type Publisher interface {
	Publish(topic string, payload []byte) error
}

// Result is the answer to a command.
type Result struct {
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Result  string `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
}

// queued commands beyond which new ones are refused rather than piling up.
const queueLen = 4

// Dispatcher routes commands to handlers.
type Dispatcher struct {
	prefix   string
	max      int
	handlers map[string]Handler
	log      *slog.Logger
	// refusals keeps a flood of bad commands from flooding the log.
	refusals *ratelog.Limiter
	queue    chan request

	mu  sync.Mutex
	pub Publisher
}

type request struct {
	name    string
	payload []byte
}

// New makes a dispatcher for the command topics under prefix
// (contract.Topics.Commands); payloads over maxPayload bytes are refused unread.
func New(prefix string, maxPayload int, handlers map[string]Handler, log *slog.Logger) *Dispatcher {
	return &Dispatcher{prefix: contract.Topics{Prefix: prefix}.Commands(), max: maxPayload, handlers: handlers, log: log,
		refusals: ratelog.New(10 * time.Second), queue: make(chan request, queueLen)}
}

// Filter is the MQTT subscription that reaches every command.
func (d *Dispatcher) Filter() string { return d.prefix + "+" }

// Handle takes a message from MQTT. It never blocks: the command is queued
// for Run, or refused when the queue is full.
func (d *Dispatcher) Handle(topic string, payload []byte) {
	name, ok := strings.CutPrefix(topic, d.prefix)
	if !ok || strings.Contains(name, "/") {
		return // our own results, or not for us
	}
	refuse := func(msg string, args ...any) {
		d.refusals.Warn(d.log, msg, append([]any{"command", name, "bytes", len(payload)}, args...)...)
	}
	switch {
	case d.handlers[name] == nil:
		refuse("mqtt command refused: unknown command", "known", d.names())
		d.answer(Result{Command: name, Error: fmt.Sprintf("unknown command %q (known: %s)", name, d.names())})
	case len(payload) > d.max:
		refuse("mqtt command refused: payload too large", "max", d.max)
		d.answer(Result{Command: name, Error: fmt.Sprintf("payload of %d bytes exceeds the limit of %d", len(payload), d.max)})
	default:
		select {
		case d.queue <- request{name: name, payload: bytes.Clone(payload)}:
		default:
			refuse("mqtt command refused: busy")
			d.answer(Result{Command: name, Error: "busy: too many commands queued, try again"})
		}
	}
}

// Run executes queued commands one at a time until ctx is done; answers go
// out through pub.
func (d *Dispatcher) Run(ctx context.Context, pub Publisher) {
	d.mu.Lock()
	d.pub = pub
	d.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-d.queue:
			res, err := d.handlers[r.name](ctx, r.payload)
			if err != nil {
				d.refusals.Warn(d.log, "mqtt command failed", "command", r.name, "err", err)
				d.answer(Result{Command: r.name, Error: err.Error()})
				continue
			}
			d.log.Info("mqtt command done", "command", r.name, "result", res)
			d.answer(Result{Command: r.name, OK: true, Result: res})
		}
	}
}

func (d *Dispatcher) answer(r Result) {
	d.mu.Lock()
	pub := d.pub
	d.mu.Unlock()
	if pub == nil || !isName(r.Command) {
		return
	}
	b, _ := json.Marshal(r)
	if err := pub.Publish(contract.Result(d.prefix+r.Command), b); err != nil {
		d.refusals.Warn(d.log, "mqtt command answer not sent", "command", r.Command, "err", err)
	}
}

func (d *Dispatcher) names() string {
	var n []string
	for k := range d.handlers {
		n = append(n, k)
	}
	slices.Sort(n)
	return strings.Join(n, ", ")
}

// isName limits the topics answers go to: a command name is short and plain.
func isName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ParseEmpty accepts the payload of a command that takes no arguments: nothing,
// or an empty JSON object.
func ParseEmpty(payload []byte) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return nil
	}
	if p[0] != '{' {
		return errors.New("payload must be empty or {}")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	var v struct{}
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("payload must be empty or {}: %w", err)
	}
	if dec.More() {
		return errors.New("payload must be empty or {}: trailing data after the object")
	}
	return nil
}
