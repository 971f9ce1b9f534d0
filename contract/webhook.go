package contract

// Notification is what the webhook POSTs (webhook.url) for one track
// event: the event as <prefix>/<camera>/events carries it, with links to
// the page when it is on.
type Notification struct {
	Event Event `json:"event"`
	// SnapshotURL is the event's best face on the page (when it has one).
	SnapshotURL string `json:"snapshot_url,omitempty"`
	// ClipURL is the event's clip on the page (once recorded).
	ClipURL string `json:"clip_url,omitempty"`
	// PageURL is the page's events list.
	PageURL string `json:"page_url,omitempty"`
}

// WebhookStats are the webhook's notifications since the start.
type WebhookStats struct {
	Pending int    `json:"pending"` // stored, not yet taken by the receiver
	Sent    uint64 `json:"sent"`
	// Dropped: refused by the receiver for good (a 4xx), or dropped by the
	// bounds (webhook.max_bytes, max_age) or a full disk.
	Dropped uint64 `json:"dropped"`
	Failing bool   `json:"failing"` // the last attempt failed
}
