// Package hass builds Home Assistant MQTT discovery messages for the topics
// the daemon publishes, so the daemon and each of its cameras show up in Home
// Assistant as devices without any YAML on the Home Assistant side. A camera
// (a device "via" the daemon's) has:
//
//   - binary_sensor "Deepfake": on while <prefix>/<camera>/state is "fake";
//   - sensor "Fake score": <prefix>/<camera>/score, the highest track score 0..1;
//   - sensor "Analysed frame rate": this camera's fps in the JSON of <prefix>/stats;
//   - event "Face track", with events.enabled: each <prefix>/<camera>/events
//     message, typed by the track's state (fake, real, uncertain) or ended;
//   - image "Last face", with events.snapshots.publish: the JPEG on
//     <prefix>/<camera>/snapshot.
//
// The daemon's device has binary_sensor "Running" (<prefix>/status) and the
// diagnostic sensors "Outbox" (messages waiting for the broker) and "Head"
// (the head's id), from <prefix>/stats; its configuration_url is the page.
//
// A camera's entities are available only while both <prefix>/status (the
// daemon) and <prefix>/<camera>/availability (the camera) say "online"; the
// daemon's sensors while <prefix>/status does.
//
// The package only builds messages; publishing them (retained) at every
// connection is the caller's. Key names are Home Assistant's full names, not
// the abbreviations, so the payloads read like the documentation:
// https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
package hass

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/deepfaked/deepfaked/contract"
)

// Options says what to announce.
type Options struct {
	DiscoveryPrefix string // mqtt.homeassistant.discovery_prefix, e.g. "homeassistant"
	TopicPrefix     string // mqtt.topic_prefix, e.g. "deepfaked/edge-01"
	DeviceID        string // device_id, e.g. "edge-01"
	Version         string // the daemon's version, for sw_version; omitted when empty
	Cameras         []string
	// PageURL is the daemon's page, the devices' configuration_url (omitted
	// when empty).
	PageURL string
	// Events and Snapshots announce each camera's event and image entities
	// (events.enabled, events.snapshots.publish); when off, their topics get
	// an empty config, which removes an entity an earlier run announced.
	Events, Snapshots bool
}

// Message is one discovery message. Every one must be published retained:
// Home Assistant reads the retained configs when it (re)subscribes, and an
// empty retained payload is what deletes an entity.
type Message struct {
	Topic   string
	Payload []byte
}

// ErrInvalid is wrapped by every error Configs returns for bad Options.
var ErrInvalid = errors.New("invalid option")

// Payloads Home Assistant's entities map (the daemon's come from package
// contract).
const (
	binaryOn   = "ON"
	binaryOff  = "OFF"
	originName = "deepfaked"
)

// entity is one of the entities each camera gets. key names it in the
// discovery topic, unique_id and entity id; it must stay stable, since Home
// Assistant keys the entity registry (renames, areas, history) on unique_id.
type entity struct {
	component string // binary_sensor, sensor, event or image
	key       string
	build     func(o Options, camera string) config
	on        func(o Options) bool // nil: always announced
}

// entities are in the order Configs returns them for each camera. No key
// ends in "_"+another key, so <camera>_<key> cannot be the same for two
// cameras of one device. A function, not a package variable, so nothing can
// change the list at run time.
func entities() [5]entity {
	return [...]entity{
		{"binary_sensor", "deepfake", deepfakeConfig, nil},
		{"sensor", "score", scoreConfig, nil},
		{"sensor", "fps", fpsConfig, nil},
		{"event", "track", trackConfig, func(o Options) bool { return o.Events }},
		{"image", "face", faceConfig, func(o Options) bool { return o.Snapshots }},
	}
}

// daemonEntity is one of the daemon device's entities. Its object id is its
// key, which holds no "_": it cannot be a camera's <camera>_<key>.
type daemonEntity struct {
	component string
	key       string
	build     func(o Options) config
}

func daemonEntities() [3]daemonEntity {
	return [...]daemonEntity{
		{"binary_sensor", "running", runningConfig},
		{"sensor", "outbox", outboxConfig},
		{"sensor", "head", headConfig},
	}
}

// config is a discovery payload: the options the binary_sensor and sensor
// MQTT platforms document, full names, optional ones omitted when unset.
type config struct {
	Name          string         `json:"name"`
	UniqueID      string         `json:"unique_id"`
	DefaultEntity string         `json:"default_entity_id"`
	StateTopic    string         `json:"state_topic,omitempty"`
	ImageTopic    string         `json:"image_topic,omitempty"`
	ContentType   string         `json:"content_type,omitempty"`
	EventTypes    []string       `json:"event_types,omitempty"`
	ValueTemplate string         `json:"value_template,omitempty"`
	PayloadOn     string         `json:"payload_on,omitempty"`
	PayloadOff    string         `json:"payload_off,omitempty"`
	DeviceClass   string         `json:"device_class,omitempty"`
	StateClass    string         `json:"state_class,omitempty"`
	Unit          string         `json:"unit_of_measurement,omitempty"`
	Precision     *int           `json:"suggested_display_precision,omitempty"`
	Category      string         `json:"entity_category,omitempty"`
	Icon          string         `json:"icon,omitempty"`
	Availability  []availability `json:"availability,omitempty"`
	AvailMode     string         `json:"availability_mode,omitempty"`
	Device        device         `json:"device"`
	Origin        origin         `json:"origin"`
}

type availability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

type device struct {
	Identifiers      []string `json:"identifiers"`
	Name             string   `json:"name"`
	Manufacturer     string   `json:"manufacturer"`
	Model            string   `json:"model"`
	SWVersion        string   `json:"sw_version,omitempty"`
	ConfigurationURL string   `json:"configuration_url,omitempty"`
	ViaDevice        string   `json:"via_device,omitempty"`
}

// origin tells Home Assistant (and whoever reads its log) which software
// published the config; name is the one key it requires there.
type origin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

// Configs returns the discovery config of every entity of every camera, in
// camera order and entities() order (an empty payload for an entity turned
// off), then the daemon's entities. It fails, naming the field, when an
// option would make a topic or id Home Assistant refuses.
func Configs(o Options) ([]Message, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	msgs := make([]Message, 0, len(o.Cameras)*len(entities())+len(daemonEntities()))
	add := func(topic, what string, c config) error {
		payload, err := marshal(c)
		if err != nil { // cannot happen with these plain structs; kept so a future field cannot fail silently
			return fmt.Errorf("hass: %s: %w", what, err)
		}
		msgs = append(msgs, Message{Topic: topic, Payload: payload})
		return nil
	}
	for _, cam := range o.Cameras {
		for _, e := range entities() {
			if e.on != nil && !e.on(o) {
				msgs = append(msgs, Message{Topic: discoveryTopic(o, e, cam), Payload: []byte{}})
				continue
			}
			if err := add(discoveryTopic(o, e, cam), fmt.Sprintf("camera %q %s", cam, e.key), e.build(o, cam)); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range daemonEntities() {
		if err := add(daemonTopic(o, e), e.key, e.build(o)); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// Removals returns an empty payload on each topic Configs would use for
// o's cameras: published retained, it deletes the entities in Home
// Assistant and clears the retained config at the broker. Use it for
// cameras dropped from the config, or for all of them when Home Assistant
// discovery is turned off. TopicPrefix and Version are not needed.
//
// It returns nil when DiscoveryPrefix or DeviceID is invalid, and skips
// invalid camera names: Configs never published anything there, and a topic
// with a wildcard would only make the publish fail.
func Removals(o Options) []Message {
	if o.checkDiscoveryPrefix() != nil || o.checkDeviceID() != nil {
		return nil
	}
	var msgs []Message
	for _, cam := range o.Cameras {
		if !contract.ValidName(cam) {
			continue
		}
		for _, e := range entities() {
			msgs = append(msgs, Message{Topic: discoveryTopic(o, e, cam), Payload: []byte{}})
		}
	}
	return msgs
}

// DaemonRemovals is Removals for the daemon's own device: for discovery
// turned off, or announced under another prefix or device id.
func DaemonRemovals(o Options) []Message {
	if o.checkDiscoveryPrefix() != nil || o.checkDeviceID() != nil {
		return nil
	}
	var msgs []Message
	for _, e := range daemonEntities() {
		msgs = append(msgs, Message{Topic: daemonTopic(o, e), Payload: []byte{}})
	}
	return msgs
}

// daemonTopic is the discovery topic of one of the daemon's entities.
func daemonTopic(o Options, e daemonEntity) string {
	return contract.Discovery(o.DiscoveryPrefix, e.component, nodeID(o), e.key)
}

// discoveryTopic is <discovery_prefix>/<component>/<node_id>/<object_id>/config.
// The node_id level keeps one daemon's configs apart from another's (and
// lets `mosquitto_sub -t homeassistant/+/deepfaked_edge-01/#` show them);
// Home Assistant itself ignores it.
func discoveryTopic(o Options, e entity, camera string) string {
	return contract.Discovery(o.DiscoveryPrefix, e.component, nodeID(o), camera+"_"+e.key)
}

// nodeID is deepfaked_<device>. DeviceID is checked to be [A-Za-z0-9_-]+,
// the class Home Assistant allows for node_id and object_id, so nothing
// needs replacing.
func nodeID(o Options) string { return "deepfaked_" + o.DeviceID }

// uniqueID is deepfaked_<device>_<camera>_<key>.
func uniqueID(o Options, camera, key string) string {
	return deviceIdentifier(o, camera) + "_" + key
}

// defaultEntityID is the entity id Home Assistant gives the entity when it
// is first created (the user may rename it later). It replaces the
// object_id option, which Home Assistant 2025.10 deprecated and 2026.4
// drops. Versions before 2025.10 drop the unknown key and name the entity
// from the device and entity names instead, which is harmless.
func defaultEntityID(o Options, component, camera, key string) string {
	return component + "." + slug(uniqueID(o, camera, key))
}

// slug makes s a valid entity id object part: lowercase [a-z0-9_], no
// leading, trailing or double underscore. Names may hold '-' and upper case,
// which an entity id may not.
func slug(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	return b.String()
}

// base fills what every entity of the camera shares.
func base(o Options, component, camera, key, name string) config {
	return config{
		Name:          name,
		UniqueID:      uniqueID(o, camera, key),
		DefaultEntity: defaultEntityID(o, component, camera, key),
		// Both must be online: "all" makes the entity unavailable when the
		// daemon is gone (its last will) or when only this camera is down,
		// instead of trusting whichever topic spoke last ("latest").
		Availability: []availability{
			{Topic: o.topics().Status(), PayloadAvailable: contract.Online, PayloadNotAvailable: contract.Offline},
			{Topic: o.topics().Availability(camera), PayloadAvailable: contract.Online, PayloadNotAvailable: contract.Offline},
		},
		AvailMode: "all",
		// One device per camera, so a camera's entities group on one card
		// and can be put in the room where the camera is; it is reached
		// through the daemon's device.
		Device: device{
			Identifiers:      []string{deviceIdentifier(o, camera)},
			Name:             camera + " (" + o.DeviceID + ")",
			Manufacturer:     originName,
			Model:            "deepfake detector",
			SWVersion:        o.Version,
			ConfigurationURL: o.PageURL,
			ViaDevice:        nodeID(o),
		},
		Origin: origin{Name: originName, SWVersion: o.Version},
	}
}

// daemonBase fills what every entity of the daemon's device shares: it is
// available while the daemon is online.
func daemonBase(o Options, component, key, name string) config {
	return config{
		Name:          name,
		UniqueID:      nodeID(o) + "_" + key,
		DefaultEntity: component + "." + slug(nodeID(o)+"_"+key),
		Availability:  []availability{{Topic: o.topics().Status(), PayloadAvailable: contract.Online, PayloadNotAvailable: contract.Offline}},
		AvailMode:     "all",
		Device: device{
			Identifiers:      []string{nodeID(o)},
			Name:             "deepfaked " + o.DeviceID,
			Manufacturer:     originName,
			Model:            "deepfaked daemon",
			SWVersion:        o.Version,
			ConfigurationURL: o.PageURL,
		},
		Origin: origin{Name: originName, SWVersion: o.Version},
	}
}

// runningConfig: the daemon's status (its last will says offline), so no
// availability of its own: unavailable would hide the very thing it shows.
func runningConfig(o Options) config {
	c := daemonBase(o, "binary_sensor", "running", "Running")
	c.Availability, c.AvailMode = nil, ""
	c.StateTopic = o.topics().Status()
	c.PayloadOn, c.PayloadOff = contract.Online, contract.Offline
	c.DeviceClass = "running"
	c.Category = "diagnostic"
	return c
}

// outboxConfig: messages waiting for the broker's acknowledgement; more
// than a few means verdicts are not getting out.
func outboxConfig(o Options) config {
	c := daemonBase(o, "sensor", "outbox", "Outbox")
	c.StateTopic = o.topics().Stats()
	c.ValueTemplate = "{{ value_json.outbox.messages }}"
	c.StateClass = "measurement"
	c.Unit = "messages"
	c.Category = "diagnostic"
	c.Icon = "mdi:tray-full"
	return c
}

// headConfig: the head's id, as verdicts carry it; it changes on a reload,
// an install or a rollback.
func headConfig(o Options) config {
	c := daemonBase(o, "sensor", "head", "Head")
	c.StateTopic = o.topics().Stats()
	c.ValueTemplate = "{{ value_json.model.head }}"
	c.Category = "diagnostic"
	c.Icon = "mdi:brain"
	return c
}

// topics are the daemon's topics under TopicPrefix.
func (o Options) topics() contract.Topics { return contract.Topics{Prefix: o.TopicPrefix} }

// deviceIdentifier is deepfaked_<device>_<camera>, the camera's device.
func deviceIdentifier(o Options, camera string) string { return nodeID(o) + "_" + camera }

// deepfakeConfig: the state topic carries "fake", "real" or "none". Only
// "fake" is on; mapping every other payload to OFF in the template (rather
// than payload_on "fake", which leaves "real" and "none" unmatched and
// logged as unknown payloads) makes both non-fake states read as off.
//
// device_class tamper ("Tampering detected" / "Clear"): a deepfake in front
// of the camera is someone feeding the sensor a forged face, which is what
// tamper means. problem would read as a fault of the device, and faults are
// what availability already reports.
func deepfakeConfig(o Options, camera string) config {
	c := base(o, "binary_sensor", camera, "deepfake", "Deepfake")
	c.StateTopic = o.topics().State(camera)
	c.ValueTemplate = "{{ '" + binaryOn + "' if value == '" + contract.CameraFake + "' else '" + binaryOff + "' }}"
	c.PayloadOn, c.PayloadOff = binaryOn, binaryOff
	c.DeviceClass = "tamper"
	return c
}

// scoreConfig: the payload is already a bare number, so no template. It is
// a probability 0..1, kept as is (no unit) so automations compare it with
// the same thresholds as the config and the events; "%" would mean x100.
func scoreConfig(o Options, camera string) config {
	c := base(o, "sensor", camera, "score", "Fake score")
	c.StateTopic = o.topics().Score(camera)
	c.StateClass = "measurement"
	c.Precision = ptr(2)
	c.Icon = "mdi:face-recognition"
	return c
}

// fpsConfig: stats is one JSON document for all cameras; the template picks
// this camera's entry by name. A camera missing from the document renders
// none, which Home Assistant's MQTT sensor takes as unknown, rather than
// failing to parse a non-number. Diagnostic, since it describes the
// daemon's throughput rather than what the camera sees.
func fpsConfig(o Options, camera string) config {
	c := base(o, "sensor", camera, "fps", "Analysed frame rate")
	c.StateTopic = o.topics().Stats()
	c.ValueTemplate = fpsTemplate(camera)
	c.StateClass = "measurement"
	c.Unit = "fps"
	c.Precision = ptr(1)
	c.Category = "diagnostic"
	c.Icon = "mdi:speedometer"
	return c
}

// trackConfig: each event message, typed by the track's state after it
// (fake, real, uncertain) or ended, with the track, its score, the event
// id and the snapshot file as attributes. Home Assistant ignores retained
// event messages; events are not retained anyway.
func trackConfig(o Options, camera string) config {
	c := base(o, "event", camera, "track", "Face track")
	c.StateTopic = o.topics().Events(camera)
	c.EventTypes = trackEventTypes()
	c.ValueTemplate = trackTemplate
	c.Icon = "mdi:face-recognition"
	return c
}

// trackEventTypes are what trackTemplate renders as event_type.
func trackEventTypes() []string {
	return append(contract.TrackStates(), trackEnded)
}

// trackEnded is the event type of an event of type end.
const trackEnded = "ended"

// trackTemplate renders the JSON Home Assistant's event entity takes: its
// event_type, and the rest as attributes.
const trackTemplate = "{{ {'event_type': '" + trackEnded + "' if value_json.type == '" + contract.EventEnd +
	"' else value_json.after.state, 'state': value_json.after.state, 'score': value_json.after.score, " +
	"'track': value_json.after.track, 'id': value_json.id, 'snapshot': value_json.after.snapshot | default(''), " +
	"'clip': value_json.after.clip | default('')} | tojson }}"

// faceConfig: the retained raw JPEG of the last event's best face.
func faceConfig(o Options, camera string) config {
	c := base(o, "image", camera, "face", "Last face")
	c.ImageTopic = o.topics().Snapshot(camera)
	c.ContentType = "image/jpeg"
	return c
}

// fpsTemplate selects cameras[name == camera].fps. camera is checked to be
// [A-Za-z0-9_-]+, so it needs no escaping inside the quoted Jinja string.
func fpsTemplate(camera string) string {
	return "{{ value_json.cameras | selectattr('name', 'equalto', '" + camera +
		"') | map(attribute='fps') | first | default(none) }}"
}

func ptr[T any](v T) *T { return &v }

// marshal encodes without HTML escaping, so a template's quotes and
// operators stay readable to whoever inspects the retained config.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// check validates o for Configs. The config package checks the same rules
// for the file; these repeat them because a bad value here would be
// published where Home Assistant either ignores it or rejects the whole
// config, and no error would reach the daemon's log.
func (o Options) check() error {
	if err := o.checkDiscoveryPrefix(); err != nil {
		return err
	}
	if err := o.checkTopicPrefix(); err != nil {
		return err
	}
	if err := o.checkDeviceID(); err != nil {
		return err
	}
	if len(o.Cameras) == 0 {
		return invalid("Cameras", "no cameras")
	}
	seen := make(map[string]bool, len(o.Cameras))
	for i, cam := range o.Cameras {
		field := fmt.Sprintf("Cameras[%d]", i)
		if !contract.ValidName(cam) {
			return invalid(field, "%q may only hold letters, digits, _ and -", cam)
		}
		if seen[cam] {
			return invalid(field, "%q is listed twice", cam)
		}
		seen[cam] = true
	}
	return nil
}

func (o Options) checkDiscoveryPrefix() error {
	if err := contract.CheckDiscoveryPrefix(o.DiscoveryPrefix); err != nil {
		return invalid("DiscoveryPrefix", "%q %v", o.DiscoveryPrefix, err)
	}
	return nil
}

func (o Options) checkTopicPrefix() error {
	if err := contract.CheckPrefix(o.TopicPrefix); err != nil {
		return invalid("TopicPrefix", "%q %v", o.TopicPrefix, err)
	}
	return nil
}

func (o Options) checkDeviceID() error {
	if o.DeviceID == "" {
		return invalid("DeviceID", "empty")
	}
	if !contract.ValidName(o.DeviceID) {
		return invalid("DeviceID", "%q may only hold letters, digits, _ and -", o.DeviceID)
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("hass: Options.%s: %w: %s", field, ErrInvalid, fmt.Sprintf(format, args...))
}
