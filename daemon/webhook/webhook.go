// Package webhook notifies a web address of the daemon's track events (a
// notification service, a chat bot) without Home Assistant. Each
// notification is stored in an outbox of its own (daemon/outbox) before it
// is sent, and sent again, oldest first, until the receiver answers 2xx, so
// a receiver that is down, or a daemon restarted meanwhile, loses nothing.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// Options configure a Sender. Every field is taken as given.
type Options struct {
	URL string
	// All sends every event; otherwise only those of a track that is fake
	// after the event or was fake before it (webhook.events fake).
	All     bool
	Timeout time.Duration // one POST
	// PageURL is the page's address ("" when it is off), for the links.
	PageURL string
	Outbox  outbox.Options
	// MinBackoff and MaxBackoff bound the pause between failed attempts,
	// which doubles from the one to the other.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger // nil discards
}

// topic is the outbox records' topic: one receiver, one topic.
const topic = "webhook"

// Sender stores and posts notifications. Event is safe for concurrent use;
// Run posts until its context ends.
type Sender struct {
	opts    Options
	box     *outbox.Outbox
	client  *http.Client
	log     *slog.Logger
	sent    atomic.Uint64
	refused atomic.Uint64
	failing atomic.Bool
	errLog  *ratelog.Limiter
}

// New opens the outbox in opts.Outbox.Dir (what an earlier run left is sent
// first).
func New(opts Options) (*Sender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: %q is not an http:// or https:// address", opts.URL)
	}
	if opts.Timeout <= 0 || opts.MinBackoff <= 0 || opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("webhook: need a timeout > 0 and 0 < min backoff <= max backoff (got %v, %v, %v)", opts.Timeout, opts.MinBackoff, opts.MaxBackoff)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	box, err := outbox.Open(opts.Outbox)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Sender{opts: opts, box: box, log: log.With("webhook", u.Redacted()),
		client: &http.Client{Timeout: opts.Timeout}, errLog: ratelog.New(time.Minute)}, nil
}

// Event stores a notification of ev when the options want it. A failure
// to store (a full disk) is logged, at most once a minute.
func (s *Sender) Event(ev contract.Event) {
	if !s.opts.All && !fake(ev) {
		return
	}
	n := contract.Notification{Event: ev}
	if s.opts.PageURL != "" {
		n.PageURL = s.opts.PageURL + "events"
		if ev.After.Snapshot != "" {
			n.SnapshotURL = s.opts.PageURL + "files/snapshots/" + url.PathEscape(ev.Camera) + "/" + url.PathEscape(filepath.Base(ev.After.Snapshot))
		}
		if ev.After.Clip != "" {
			n.ClipURL = s.opts.PageURL + "files/clips/" + url.PathEscape(ev.Camera) + "/" + url.PathEscape(filepath.Base(ev.After.Clip))
		}
	}
	b, err := json.Marshal(n)
	if err == nil {
		_, err = s.box.Append(outbox.Message{Topic: topic, Payload: b})
	}
	if err != nil {
		s.errLog.Log(s.log, slog.LevelError, time.Now(), "webhook: notification not stored", "event", ev.ID, "err", err)
	}
}

// fake: the track is fake after the event, or was before it (its end, or a
// turn back to real).
func fake(ev contract.Event) bool {
	return ev.After.State == contract.TrackFake || ev.Before != nil && ev.Before.State == contract.TrackFake
}

// Run posts the stored notifications in order until ctx ends; it returns
// ctx's error, or outbox.ErrClosed after Close.
func (s *Sender) Run(ctx context.Context) error {
	var from uint64
	backoff := s.opts.MinBackoff
	for {
		r, err := s.box.Read(ctx, from)
		if err != nil {
			return err
		}
		wait, err := s.post(ctx, r.Payload)
		switch {
		case err == nil:
			s.sent.Add(1)
			s.failing.Store(false)
			backoff = s.opts.MinBackoff
		case errors.Is(err, errRefused):
			s.refused.Add(1)
			s.failing.Store(false)
			s.log.Warn("webhook: the receiver refused a notification; dropped", "seq", r.Seq, "err", err)
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.failing.Store(true)
			wait = max(wait, backoff)
			backoff = min(2*backoff, s.opts.MaxBackoff)
			s.errLog.Log(s.log, slog.LevelWarn, time.Now(), "webhook: not delivered; trying again", "err", err, "retry_in", wait, "pending", s.box.Stats().Pending)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		s.box.Ack(r.Seq)
		from = r.Seq + 1
	}
}

// errRefused marks an answer that trying again will not change.
var errRefused = errors.New("refused")

// post sends one notification. A 4xx other than 408 (timeout) and 429 (too
// many requests) is errRefused; a 429 or 503's Retry-After (seconds) is
// how long to wait before the next attempt.
func (s *Sender) post(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "deepfaked")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL, password included
			return 0, ue.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return min(time.Duration(max(secs, 0))*time.Second, s.opts.MaxBackoff), fmt.Errorf("HTTP %s", resp.Status)
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout:
		return 0, fmt.Errorf("HTTP %s: %w", resp.Status, errRefused)
	default:
		return 0, fmt.Errorf("HTTP %s", resp.Status)
	}
}

// Stats are the notifications so far.
func (s *Sender) Stats() contract.WebhookStats {
	b := s.box.Stats()
	return contract.WebhookStats{Pending: b.Pending, Sent: s.sent.Load(),
		Dropped: s.refused.Load() + b.DroppedFull + b.DroppedAge + b.DroppedDiskFull + b.Corrupt, Failing: s.failing.Load() || b.Failing}
}

// Drain waits until the receiver has taken every stored notification (Run
// must be running), or ctx ends.
func (s *Sender) Drain(ctx context.Context) error { return s.box.WaitEmpty(ctx) }

// Close closes the outbox; what was not delivered is sent by the next run.
func (s *Sender) Close() error { return s.box.Close() }
