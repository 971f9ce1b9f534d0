// Package contract is what deepfaked promises the world outside it: the MQTT
// topics it publishes and subscribes, the verdict and event payloads and
// their words, the rule that makes a score a verdict, the names a camera
// or device may have, and the ids and file names subscribers see. Every
// producer (pipeline, tracks, health, Home Assistant discovery) and consumer
// (the page, the live view, bench, eval, watch, doctor) takes them from
// here, so the contract is written once. Pure Go: it builds with
// CGO_ENABLED=0, for subscribers' tools too. docs/verdict.schema.json and
// docs/event.schema.json are generated from these types (contract tests).
package contract

// SchemaVersion is the version of the payloads below; it goes out in the
// retained <prefix>/stats report, so a subscriber can tell what it reads.
// A change that removes or renames a field, or changes a field's meaning,
// raises it.
const SchemaVersion = 1
