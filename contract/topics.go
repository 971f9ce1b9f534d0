package contract

import "strings"

// The topic levels under <prefix>/<camera>.
const (
	KindVerdict      = "verdict"      // every analysed frame (Verdict)
	KindEvents       = "events"       // track events (Event)
	KindState        = "state"        // retained camera state: CameraFake, CameraReal or CameraNone
	KindScore        = "score"        // retained highest live track score, "0.00".."1.00"
	KindSnapshot     = "snapshot"     // retained JPEG of the last event's best face
	KindAvailability = "availability" // retained Online or Offline: the camera delivers frames
)

// The levels under <prefix>.
const (
	levelStatus   = "status" // retained Online/Offline of the daemon (its MQTT last will)
	levelStats    = "stats"  // retained JSON report (daemon/health)
	levelCommands = "cmd"    // <prefix>/cmd/<name>, answered on .../result
	levelResult   = "result"
)

// Status payloads, on <prefix>/status and <prefix>/<camera>/availability.
const (
	Online  = "online"
	Offline = "offline"
)

// Commands the daemon takes on <prefix>/cmd/<name>.
const (
	CommandLabel  = "label"
	CommandReload = "reload"
)

// Topics are the topics of one daemon, under its mqtt.topic_prefix.
type Topics struct{ Prefix string }

// Camera is <prefix>/<camera>/<kind>.
func (t Topics) Camera(camera, kind string) string { return t.Prefix + "/" + camera + "/" + kind }

// Verdict is <prefix>/<camera>/verdict.
func (t Topics) Verdict(camera string) string { return t.Camera(camera, KindVerdict) }

// Events is <prefix>/<camera>/events.
func (t Topics) Events(camera string) string { return t.Camera(camera, KindEvents) }

// State is <prefix>/<camera>/state.
func (t Topics) State(camera string) string { return t.Camera(camera, KindState) }

// Score is <prefix>/<camera>/score.
func (t Topics) Score(camera string) string { return t.Camera(camera, KindScore) }

// Snapshot is <prefix>/<camera>/snapshot.
func (t Topics) Snapshot(camera string) string { return t.Camera(camera, KindSnapshot) }

// Availability is <prefix>/<camera>/availability.
func (t Topics) Availability(camera string) string { return t.Camera(camera, KindAvailability) }

// Status is <prefix>/status.
func (t Topics) Status() string { return t.Prefix + "/" + levelStatus }

// Stats is <prefix>/stats.
func (t Topics) Stats() string { return t.Prefix + "/" + levelStats }

// Commands is the prefix of every command topic, <prefix>/cmd/.
func (t Topics) Commands() string { return t.Prefix + "/" + levelCommands + "/" }

// Command is <prefix>/cmd/<name>.
func (t Topics) Command(name string) string { return t.Commands() + name }

// Result is where a command's answer goes: <command topic>/result.
func Result(commandTopic string) string { return commandTopic + "/" + levelResult }

// CameraOf splits <prefix>/<camera>/<kind>; ok is false for any other topic.
func (t Topics) CameraOf(topic string) (camera, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, t.Prefix+"/")
	if !ok {
		return "", "", false
	}
	camera, kind, ok = strings.Cut(rest, "/")
	if !ok || !ValidName(camera) || strings.Contains(kind, "/") {
		return "", "", false
	}
	return camera, kind, true
}

// Discovery is Home Assistant's discovery topic,
// <discovery_prefix>/<component>/<node_id>/<object_id>/config.
func Discovery(discoveryPrefix, component, nodeID, objectID string) string {
	return discoveryPrefix + "/" + component + "/" + nodeID + "/" + objectID + "/config"
}
