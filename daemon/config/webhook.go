package config

import (
	"net/url"
	"time"
)

// Webhook posts the daemon's track events to a web address (a notification
// service, a chat bot), retried from an outbox of its own until the receiver
// takes them. Off unless URL is set.
type Webhook struct {
	URL string `yaml:"url"`
	// Events is fake (events of tracks that are, or were, fake) or all.
	Events string `yaml:"events"`
	// Timeout bounds each POST.
	Timeout Duration `yaml:"timeout"`
	// Dir holds the undelivered notifications; default <state_dir>/webhook.
	Dir string `yaml:"dir"`
	// MaxBytes and MaxAge bound them, as mqtt.outbox's do.
	MaxBytes int      `yaml:"max_bytes"`
	MaxAge   Duration `yaml:"max_age"`
}

// Webhook defaults and bounds.
const (
	WebhookFake           = "fake"
	WebhookAll            = "all"
	DefaultWebhookBytes   = 16 << 20
	DefaultWebhookAge     = Duration(24 * time.Hour)
	DefaultWebhookTimeout = Duration(10 * time.Second)
	MaxWebhookTimeout     = Duration(5 * time.Minute)
)

func defaultWebhook() Webhook {
	return Webhook{Events: WebhookFake, Timeout: DefaultWebhookTimeout, MaxBytes: DefaultWebhookBytes, MaxAge: DefaultWebhookAge}
}

func (w *Webhook) check(k checker) {
	if w.URL != "" {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.fail("webhook.url", "want an http:// or https:// address with a host, got %q", redactURL(w.URL))
		}
	}
	k.oneOf("webhook.events", w.Events, []string{WebhookFake, WebhookAll})
	if t := w.Timeout; t <= 0 || t > MaxWebhookTimeout {
		k.fail("webhook.timeout", "must be more than 0s and at most %s, got %s", MaxWebhookTimeout, t)
	}
	if b := int64(w.MaxBytes); b < MinOutboxBytes || b > MaxOutboxBytes {
		k.fail("webhook.max_bytes", "must be %d (64 KiB) to %d (64 GiB) bytes, got %d", MinOutboxBytes, MaxOutboxBytes, b)
	}
	if a := w.MaxAge; a < 0 || a > MaxOutboxAge {
		k.fail("webhook.max_age", "must be from 0s (no bound) to %s, got %s", MaxOutboxAge, a)
	}
}

// redactURL hides a password in a URL for an error message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}
