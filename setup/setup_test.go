package setup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/crypto/bcrypt"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/clip"
	"github.com/deepfaked/deepfaked/daemon/command"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/snapshot"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/daemon/webhook"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/configdoc"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/shipped"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/collect"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// base is the smallest accepted config, as docs/configuration.md shows it;
// each row writes keys over it.
func base(t *testing.T) []byte {
	t.Helper()
	b, err := configdoc.Smallest(docs(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func docs(t *testing.T) string { return filepath.Join(testenv.RepoRoot(t), "docs", "configuration.md") }

// probe builds a component's options from a parsed config and returns the
// field a key should reach; uses names it for failure messages.
type probe struct {
	uses string
	get  func(t *testing.T, c *config.Config) any
}

func mqttOpt(field string, f func(mqttc.Options) any) probe {
	return probe{"setup.MQTTOptions: mqttc.Options." + field, func(t *testing.T, c *config.Config) any {
		o, err := setup.MQTTOptions(c)
		if err != nil {
			t.Fatal(err)
		}
		return f(o)
	}}
}

func outboxOpt(field string, f func(outbox.Options) any) probe {
	return probe{"setup.OutboxOptions: outbox.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.OutboxOptions(c, nil)) }}
}

func brokerOpt(field string, f func(mqttc.BrokerOptions) any) probe {
	return probe{"setup.BrokerOptions: mqttc.BrokerOptions." + field, func(t *testing.T, c *config.Config) any {
		o, err := setup.BrokerOptions(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return f(o)
	}}
}

var ioTimeout = probe{"setup.IOTimeout (capture.SetFFmpegEnv in daemon.New)", func(_ *testing.T, c *config.Config) any { return setup.IOTimeout(c) }}

var watchdogStall = probe{"setup.WatchdogStall (daemon.Run's watchdog)", func(_ *testing.T, c *config.Config) any { return setup.WatchdogStall(c) }}

var gateSet = probe{"setup.GateSet (cmd/deepfaked train --install: TestTrainGateSet)", func(_ *testing.T, c *config.Config) any { return setup.GateSet(c) }}

// gateSetCrop is the gate set's crop mode with the data read as "face".
var gateSetCrop = probe{"setup.GateSetCrop (cmd/deepfaked train: BenchmarkTeachCamera)", func(_ *testing.T, c *config.Config) any { return setup.GateSetCrop(c, "face") }}

var teachFaces = probe{"setup.TeachFaces (the page's teach this camera: TestWebE2E)", func(_ *testing.T, c *config.Config) any {
	faces, every := setup.TeachFaces(c)
	return [2]int{faces, every}
}}

var selfBlend = probe{"setup.SelfBlend (cmd/deepfaked train: TestTrainSelfBlend)", func(_ *testing.T, c *config.Config) any { return setup.SelfBlend(c) }}

var statsInterval = probe{"setup.StatsInterval (daemon.Run's stats reporter)", func(_ *testing.T, c *config.Config) any { return setup.StatsInterval(c) }}

var metricsListen = probe{"setup.MetricsListen (daemon.New's metrics server)", func(_ *testing.T, c *config.Config) any { return setup.MetricsListen(c) }}

func webOpt(field string, f func(web.Options) any) probe {
	return probe{"setup.WebOptions: web.Options." + field, func(t *testing.T, c *config.Config) any {
		o, err := setup.WebOptions(c)
		if err != nil {
			t.Fatal(err)
		}
		return f(o)
	}}
}

// webLogin says whether the page's login takes the password "s3cret".
var webLogin = webOpt("PasswordHash (bcrypt of the file's password)", func(o web.Options) any {
	return o.PasswordHash != nil && bcrypt.CompareHashAndPassword(o.PasswordHash, []byte("s3cret")) == nil
})

var webListen = webOpt("Listen (\"\": the page is off)", func(o web.Options) any { return o.Listen })

func clipOpt(field string, f func(clip.Options) any) probe {
	return probe{"setup.ClipOptions: clip.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.ClipOptions(c, "r", nil)) }}
}

func webhookOpt(field string, f func(webhook.Options) any) probe {
	return probe{"setup.WebhookOptions: webhook.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.WebhookOptions(c, nil)) }}
}

var pageURL = probe{"setup.PageURL (Home Assistant's configuration_url)", func(_ *testing.T, c *config.Config) any { return setup.PageURL(c) }}

var webCerts = webOpt("TLS.Certificates", func(o web.Options) any {
	if o.TLS == nil {
		return 0
	}
	return len(o.TLS.Certificates)
})

var drainTimeout = probe{"setup.DrainTimeout (daemon.Run's wait for the outbox at the end)", func(_ *testing.T, c *config.Config) any { return setup.DrainTimeout(c) }}

func engineOpt(field string, f func(engine.Options) any) probe {
	return probe{"setup.EngineOptions: engine.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.EngineOptions(c, nil)) }}
}

func detectorOpt(field string, f func(face.Options) any) probe {
	return probe{"setup.DetectorOptions: face.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.DetectorOptions(c, nil)) }}
}

func preprocessOpt(field string, f func(preprocess.Params) any) probe {
	return probe{"setup.PreprocessParams: preprocess.Params." + field, func(_ *testing.T, c *config.Config) any {
		return f(setup.PreprocessParams(c, spec.DefaultMetadata()))
	}}
}

func cameraOpt(field string, f func(capture.Options) any) probe {
	return probe{"setup.CameraOptions: capture.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.CameraOptions(c.Capture, c.Cameras[0])) }}
}

func pipelineOpt(field string, f func(pipeline.Options) any) probe {
	return probe{"setup.PipelineOptions: pipeline.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.PipelineOptions(c)) }}
}

func haConfigs(field string, f func([]mqttc.Retained) any) probe {
	return probe{"setup.HomeAssistant (mqttc.Options.Announce): " + field, func(t *testing.T, c *config.Config) any {
		m, err := setup.HomeAssistant(c)
		if err != nil {
			t.Fatal(err)
		}
		return f(m)
	}}
}

func trackOpt(field string, f func(track.Options) any) probe {
	return probe{"setup.TrackOptions: track.Options." + field, func(_ *testing.T, c *config.Config) any { return f(setup.TrackOptions(c)) }}
}

func snapshotOpt(field string, f func(snapshot.Options) any) probe {
	return probe{"setup.SnapshotOptions: snapshot.Options." + field, func(_ *testing.T, c *config.Config) any {
		return f(setup.SnapshotOptions(c, spec.DefaultMetadata(), nil))
	}}
}

func collectOpt(field string, f func(collect.Options) any) probe {
	return probe{"setup.CollectOptions: collect.Options." + field, func(_ *testing.T, c *config.Config) any {
		return f(setup.CollectOptions(c, spec.DefaultMetadata()))
	}}
}

func trainOpt(field string, f func(train.Config) any) probe {
	return probe{"setup.WorkflowOptions: workflow.Options.Train." + field, func(t *testing.T, c *config.Config) any {
		return f(workflowOptions(t, c).Train)
	}}
}

func workflowOpt(field string, f func(workflow.Options) any) probe {
	return probe{"setup.WorkflowOptions: workflow.Options." + field, func(t *testing.T, c *config.Config) any { return f(workflowOptions(t, c)) }}
}

func workflowOptions(t *testing.T, c *config.Config) workflow.Options {
	t.Helper()
	o, err := setup.WorkflowOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func labelFolder(field string, f func(collect.Folders) any) probe {
	return probe{"setup.LabelFolders: collect.Folders." + field, func(_ *testing.T, c *config.Config) any { return f(setup.LabelFolders(c)) }}
}

// logLevel is the lowest standard level a slog handler at log_level writes.
var logLevel = probe{"setup.LogLevel: the lowest level a slog handler at it writes", func(_ *testing.T, c *config.Config) any {
	h := slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: setup.LogLevel(c)})
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if h.Enabled(context.Background(), l) {
			return l
		}
	}
	return "none"
}}

// broker starts the embedded broker, when there is one, and says where it listens.
var broker = probe{"setup.EmbeddedBroker: mqttc.Broker.URL (none: the broker is elsewhere)", func(t *testing.T, c *config.Config) any {
	b, err := setup.EmbeddedBroker(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b == nil {
		return "none"
	}
	defer b.Close()
	return b.URL()
}}

var commands = probe{"setup.Commands: a command.Dispatcher (nil: commands off)", func(_ *testing.T, c *config.Config) any {
	return setup.Commands(c, nil, slog.Default()) != nil
}}

// answers receives a command dispatcher's answers.
type answers chan command.Result

func (a answers) Publish(_ string, payload []byte) error {
	var r command.Result
	if err := json.Unmarshal(payload, &r); err != nil {
		return err
	}
	a <- r
	return nil
}

// payloadLimit is what the dispatcher answers to a command of max_payload
// bytes and to one a byte longer.
var payloadLimit = probe{"setup.Commands: command.Dispatcher.Handle's answers at max_payload and a byte over", func(t *testing.T, c *config.Config) any {
	size := func(_ context.Context, p []byte) (string, error) { return fmt.Sprint(len(p)), nil }
	d := setup.Commands(c, map[string]command.Handler{"size": size}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	defer func() { cancel(); <-ran }()
	got := make(answers, 1)
	go func() { d.Run(ctx, got); close(ran) }()
	var out []string
	for _, n := range []int{c.MQTT.Commands.MaxPayload, c.MQTT.Commands.MaxPayload + 1} {
		d.Handle(c.MQTT.TopicPrefix+"/cmd/size", []byte(strings.Repeat(" ", n)))
		select { // the first answer comes from Run, which then answers refusals too
		case r := <-got:
			out = append(out, r.Result+r.Error)
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer to a command of %d bytes", n)
		}
	}
	return out
}}

// classifier loads the models the config names and returns one of their IDs.
func classifier(field string, f func(*infer.Classifier) any) probe {
	return probe{"setup.Classifier: infer.Classifier." + field, func(t *testing.T, c *config.Config) any {
		eng, err := setup.Engine(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		clf, err := setup.Classifier(c, eng)
		if err != nil {
			t.Fatal(err)
		}
		defer clf.Close()
		return f(clf)
	}}
}

// fileID is a model's ID: the first 12 hex digits of its file's sha256.
func fileID(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])[:12]
}

// shownBy is a key no component's options carry: daemon.New reads it as it
// is, and the tests named show what it does.
func shownBy(tests string, f func(*config.Config) any) probe {
	return probe{"read as is by daemon.New; " + tests + " show its effect", func(_ *testing.T, c *config.Config) any { return f(c) }}
}

type row struct {
	key   string         // the documented key (cameras[] as cameras[0])
	value any            // written at key
	with  map[string]any // other keys the value needs
	want  any
	probe probe
}

// rows returns a row per documented key and value, zero values included where
// the config takes them. dir holds the files some keys name.
func rows(t *testing.T, dir string) []row {
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("# who may connect\ncam-viewer:v13w\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEEPFAKED_TEST_PASSWORD", "from-env")
	// web.password_file may hold the bcrypt hash instead of the password.
	hashed := filepath.Join(dir, "web-hash")
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hashed, append(h, '\n'), 0o640); err != nil {
		t.Fatal(err)
	}
	webOn := map[string]any{"web.enabled": true}
	pki := testenv.NewPKI(t, dir)
	ca, cert, key := pki.CA, pki.ClientCert, pki.ClientKey
	ssl := map[string]any{"mqtt.broker": "ssl://broker.local"}
	sslCert := map[string]any{"mqtt.broker": "ssl://broker.local", "mqtt.tls.key": key}
	sslKey := map[string]any{"mqtt.broker": "ssl://broker.local", "mqtt.tls.cert": cert}
	user := map[string]any{"mqtt.username": "edge"}
	embedded := map[string]any{"mqtt.broker": config.EmbeddedBroker}
	yunet := map[string]any{"faces.detector": "yunet", "faces.model": "yunet.onnx"}
	band := map[string]any{"train.collect.band_high": 0.8}
	tlsOn := func(o mqttc.Options) any { return o.TLS != nil && o.TLS.InsecureSkipVerify }
	dataset := labelFolder("Dataset", func(f collect.Folders) any { return f.Dataset })
	listen := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	listen1, listen2 := listen(), listen()
	cmdsOn := map[string]any{"mqtt.commands.enabled": true}
	backbone, head := testenv.Models(t)
	runtime := testenv.ORTLibrary(t)
	// A head of its own, not the one `make models` wrote: the config's path is
	// the only way the classifier can find it.
	ownHead := filepath.Join(dir, "head.onnx")
	if err := train.NewHead(1280*4*4, 7).ExportONNX(ownHead, train.ExportInfo{InputSize: 128, FeatureShape: []int{1280, 4, 4}}); err != nil {
		t.Fatal(err)
	}
	withHead := map[string]any{"model.runtime": runtime, "model.head": head}
	withBackbone := map[string]any{"model.runtime": runtime, "model.backbone": backbone}
	// A signing key pair and the test models signed with it.
	pubText, keyText, err := modelsig.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	pub, signingKey := filepath.Join(dir, "fleet.pub"), filepath.Join(dir, "device.key")
	signedBackbone, signedHead := filepath.Join(dir, "signed", "backbone.onnx"), filepath.Join(dir, "signed", "head.onnx")
	if err := errors.Join(os.WriteFile(pub, pubText, 0o644), os.WriteFile(signingKey, keyText, 0o600), os.MkdirAll(filepath.Dir(signedHead), 0o755)); err != nil {
		t.Fatal(err)
	}
	sk, err := modelsig.LoadPrivateKey(signingKey, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ from, to, role string }{{backbone, signedBackbone, modelsig.Backbone}, {head, signedHead, modelsig.Head}} {
		b, err := os.ReadFile(m.from)
		if err == nil {
			b, err = modelsig.Sign(b, sk, m.role, "")
		}
		if err == nil {
			err = os.WriteFile(m.to, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	keyID := modelsig.KeyID(sk.ID())
	watchHead := shownBy("cmd/deepfaked TestHotReload and TestSIGHUPWatchHeadOff", func(c *config.Config) any { return c.Model.WatchHead })
	return []row{
		{"device_id", "pi_7", nil, "pi_7", pipelineOpt("Device", func(o pipeline.Options) any { return o.Device })},
		{"device_id", "pi_7", nil, "deepfaked-pi_7", mqttOpt("ClientID", func(o mqttc.Options) any { return o.ClientID })},
		{"device_id", "pi_7", nil, "deepfaked/pi_7/status", mqttOpt("StatusTopic", func(o mqttc.Options) any { return o.StatusTopic })},
		{"log_level", "debug", nil, slog.LevelDebug, logLevel},
		{"log_level", "info", nil, slog.LevelInfo, logLevel},
		{"log_level", "warn", nil, slog.LevelWarn, logLevel},
		{"log_level", "error", nil, slog.LevelError, logLevel},
		{"state_dir", "/srv/df", nil, "/srv/df/collect", collectOpt("Dir", func(o collect.Options) any { return o.Dir })},
		{"state_dir", "state", nil, "/etc/deepfaked/state/dataset", dataset},
		{"state_dir", "/srv/df", nil, "/srv/df/outbox", outboxOpt("Dir", func(o outbox.Options) any { return o.Dir })},
		{"state_dir", "/srv/df", nil, "/srv/df/trt-cache", engineOpt("TensorRT.CacheDir", func(o engine.Options) any { return o.TensorRT.CacheDir })},
		{"mqtt", map[string]any{"broker": "tcp://b"}, nil, "tcp://b", mqttOpt("Broker", func(o mqttc.Options) any { return o.Broker })},
		{"mqtt.broker", "tcp://127.0.0.1", nil, "tcp://127.0.0.1", mqttOpt("Broker (mqttc fills the port)", func(o mqttc.Options) any { return o.Broker })},
		{"mqtt.broker", "wss://b:8443/mqtt", nil, "wss://b:8443/mqtt", mqttOpt("Broker", func(o mqttc.Options) any { return o.Broker })},
		{"mqtt.broker", config.EmbeddedBroker, map[string]any{"mqtt.listen": listen1}, "tcp://" + listen1, broker},
		{"mqtt.broker", "tcp://b", nil, "none", broker},
		{"mqtt.listen", listen2, embedded, "tcp://" + listen2, broker},
		{"mqtt.listen", "127.0.0.1:0", embedded, true, brokerOpt("AllowAnonymous (loopback)", func(o mqttc.BrokerOptions) any { return o.AllowAnonymous })},
		{"mqtt.listen", "0.0.0.0:0", map[string]any{"mqtt.broker": config.EmbeddedBroker, "mqtt.embedded.users_file": users, "mqtt.username": "edge", "mqtt.password_file": pw}, false, brokerOpt("AllowAnonymous (not loopback)", func(o mqttc.BrokerOptions) any { return o.AllowAnonymous })},
		{"mqtt.embedded", map[string]any{"max_packet_size": 4096}, embedded, uint32(4096), brokerOpt("MaxPacketSize", func(o mqttc.BrokerOptions) any { return o.MaxPacketSize })},
		{"mqtt.embedded.users_file", users, embedded, map[string]string{"cam-viewer": "v13w"}, brokerOpt("Users", func(o mqttc.BrokerOptions) any { return o.Users })},
		{"mqtt.embedded.users_file", users, map[string]any{"mqtt.broker": config.EmbeddedBroker, "mqtt.username": "edge", "mqtt.password_file": pw}, map[string]string{"cam-viewer": "v13w", "edge": "s3cret"}, brokerOpt("Users (with the daemon's own)", func(o mqttc.BrokerOptions) any { return o.Users })},
		{"mqtt.embedded.allow_anonymous", false, map[string]any{"mqtt.broker": config.EmbeddedBroker, "mqtt.embedded.users_file": users, "mqtt.username": "edge", "mqtt.password_file": pw}, false, brokerOpt("AllowAnonymous", func(o mqttc.BrokerOptions) any { return o.AllowAnonymous })},
		{"mqtt.embedded.allow_anonymous", true, map[string]any{"mqtt.broker": config.EmbeddedBroker, "mqtt.listen": "0.0.0.0:0"}, true, brokerOpt("AllowAnonymous", func(o mqttc.BrokerOptions) any { return o.AllowAnonymous })},
		{"mqtt.embedded.max_packet_size", 1 << 20, embedded, uint32(1 << 20), brokerOpt("MaxPacketSize", func(o mqttc.BrokerOptions) any { return o.MaxPacketSize })},
		{"mqtt.embedded.max_clients", 5, embedded, 5, brokerOpt("MaxClients", func(o mqttc.BrokerOptions) any { return o.MaxClients })},
		{"mqtt.embedded.command_users", []string{"cam-viewer"}, map[string]any{"mqtt.broker": config.EmbeddedBroker, "mqtt.embedded.users_file": users}, []string{"cam-viewer"}, brokerOpt("Access.CommandUsers", func(o mqttc.BrokerOptions) any { return o.Access.CommandUsers })},
		{"mqtt.embedded.max_retained", 7, embedded, 7, brokerOpt("MaxRetained", func(o mqttc.BrokerOptions) any { return o.MaxRetained })},
		{"mqtt.embedded.max_retained_bytes", 4096, embedded, int64(4096), brokerOpt("MaxRetainedBytes", func(o mqttc.BrokerOptions) any { return o.MaxRetainedBytes })},
		{"mqtt.embedded.max_retained", 0, embedded, 0, brokerOpt("MaxRetained (no bound)", func(o mqttc.BrokerOptions) any { return o.MaxRetained })},
		{"mqtt.embedded.max_retained_bytes", 0, embedded, int64(0), brokerOpt("MaxRetainedBytes (no bound)", func(o mqttc.BrokerOptions) any { return o.MaxRetainedBytes })},
		{"mqtt.username", "", embedded, mqttc.DaemonUser, brokerOpt("Access.Daemon (a login made for the run)", func(o mqttc.BrokerOptions) any { return o.Access.Daemon })},
		{"mqtt.client_id", "me", nil, "me", mqttOpt("ClientID", func(o mqttc.Options) any { return o.ClientID })},
		{"mqtt.username", "edge", nil, "edge", mqttOpt("Username", func(o mqttc.Options) any { return o.Username })},
		{"mqtt.password_file", pw, user, "s3cret", mqttOpt("Password", func(o mqttc.Options) any { return o.Password })},
		{"mqtt.password_env", "DEEPFAKED_TEST_PASSWORD", user, "from-env", mqttOpt("Password", func(o mqttc.Options) any { return o.Password })},
		{"mqtt.qos", 0, nil, byte(0), mqttOpt("QoS", func(o mqttc.Options) any { return o.QoS })},
		{"mqtt.qos", 2, nil, byte(2), mqttOpt("QoS", func(o mqttc.Options) any { return o.QoS })},
		{"mqtt.topic_prefix", "site/a", nil, "site/a/status", mqttOpt("StatusTopic", func(o mqttc.Options) any { return o.StatusTopic })},
		{"mqtt.topic_prefix", "site/a", nil, "site/a", pipelineOpt("TopicPrefix", func(o pipeline.Options) any { return o.TopicPrefix })},
		{"mqtt.tls", map[string]any{"insecure_skip_verify": true}, ssl, true, mqttOpt("TLS.InsecureSkipVerify", tlsOn)},
		{"mqtt.tls.ca", ca, ssl, true, mqttOpt("TLS.RootCAs", func(o mqttc.Options) any { return o.TLS != nil && o.TLS.RootCAs != nil })},
		{"mqtt.tls.cert", cert, sslCert, 1, mqttOpt("TLS.Certificates", func(o mqttc.Options) any { return len(o.TLS.Certificates) })},
		{"mqtt.tls.key", key, sslKey, 1, mqttOpt("TLS.Certificates", func(o mqttc.Options) any { return len(o.TLS.Certificates) })},
		{"mqtt.tls.insecure_skip_verify", true, ssl, true, mqttOpt("TLS.InsecureSkipVerify", tlsOn)},
		{"mqtt.tls.insecure_skip_verify", false, ssl, false, mqttOpt("TLS.InsecureSkipVerify", tlsOn)},
		{"mqtt.keepalive", "0s", nil, time.Duration(0), mqttOpt("KeepAlive", func(o mqttc.Options) any { return o.KeepAlive })},
		{"mqtt.keepalive", "1m30s", nil, 90 * time.Second, mqttOpt("KeepAlive", func(o mqttc.Options) any { return o.KeepAlive })},
		{"mqtt.commands", map[string]any{"enabled": true}, nil, true, commands},
		{"mqtt.commands.enabled", true, nil, true, commands},
		{"mqtt.commands.enabled", false, nil, false, commands},
		{"mqtt.commands.max_payload", 16, cmdsOn, []string{"16", "payload of 17 bytes exceeds the limit of 16"}, payloadLimit},
		{"mqtt.commands.max_payload", 100, cmdsOn, []string{"100", "payload of 101 bytes exceeds the limit of 100"}, payloadLimit},
		{"mqtt.outbox", map[string]any{"max_bytes": 1 << 20}, nil, int64(1 << 20), outboxOpt("MaxBytes", func(o outbox.Options) any { return o.MaxBytes })},
		{"mqtt.outbox.dir", "ob", nil, "/etc/deepfaked/ob", outboxOpt("Dir", func(o outbox.Options) any { return o.Dir })},
		{"mqtt.outbox.dir", "/var/spool/df", nil, "/var/spool/df", outboxOpt("Dir", func(o outbox.Options) any { return o.Dir })},
		{"mqtt.outbox.max_bytes", 65536, nil, int64(65536), outboxOpt("MaxBytes", func(o outbox.Options) any { return o.MaxBytes })},
		{"mqtt.outbox.max_bytes", 1 << 30, nil, int64(1 << 30), outboxOpt("MaxBytes", func(o outbox.Options) any { return o.MaxBytes })},
		{"mqtt.outbox.max_age", "0s", nil, time.Duration(0), outboxOpt("MaxAge", func(o outbox.Options) any { return o.MaxAge })},
		{"mqtt.outbox.max_age", "48h", nil, 48 * time.Hour, outboxOpt("MaxAge", func(o outbox.Options) any { return o.MaxAge })},
		{"mqtt.outbox.fsync", "0s", nil, time.Duration(0), outboxOpt("Fsync", func(o outbox.Options) any { return o.Fsync })},
		{"mqtt.outbox.fsync", "5s", nil, 5 * time.Second, outboxOpt("Fsync", func(o outbox.Options) any { return o.Fsync })},
		{"mqtt.drain_timeout", "0s", nil, time.Duration(0), drainTimeout},
		{"mqtt.stats_interval", "0s", nil, time.Duration(0), statsInterval},
		{"mqtt.stats_interval", "30s", nil, 30 * time.Second, statsInterval},
		{"metrics", map[string]any{"listen": "127.0.0.1:9464"}, nil, "127.0.0.1:9464", metricsListen},
		{"metrics.listen", "[::1]:0", nil, "[::1]:0", metricsListen},
		{"metrics.labels", map[string]any{"site": "shop-3"}, map[string]any{"device_id": "pi_7"}, map[string]string{"device": "pi_7", "site": "shop-3"},
			probe{"setup.MetricsLabels (metrics.New)", func(_ *testing.T, c *config.Config) any { return setup.MetricsLabels(c) }}},
		{"device_id", "pi_7", nil, map[string]string{"device": "pi_7"}, probe{"setup.MetricsLabels (metrics.New)", func(_ *testing.T, c *config.Config) any { return setup.MetricsLabels(c) }}},
		{"web", map[string]any{"enabled": true}, nil, config.DefaultWebListen, webListen},
		{"web.enabled", false, nil, "", webListen},
		{"web.enabled", true, nil, config.DefaultWebListen, webListen},
		{"web.enabled", true, map[string]any{"metrics.listen": config.DefaultWebListen}, true, probe{"setup.WebShared (daemon.New: one server)", func(_ *testing.T, c *config.Config) any { return setup.WebShared(c) }}},
		{"web.listen", "0.0.0.0:0", map[string]any{"web.enabled": true, "web.password_file": pw}, "0.0.0.0:0", webListen},
		{"web.password_file", pw, webOn, true, webLogin},
		{"web.password_file", hashed, webOn, true, webLogin},
		{"web.tls", map[string]any{"cert": pki.ServerCert, "key": pki.ServerKey}, webOn, 1, webCerts},
		{"web.tls.cert", pki.ServerCert, map[string]any{"web.enabled": true, "web.tls.key": pki.ServerKey}, 1, webCerts},
		{"web.tls.key", pki.ServerKey, map[string]any{"web.enabled": true, "web.tls.cert": pki.ServerCert}, 1, webCerts},
		{"web.url", "https://cams.example.net/df/", webOn, "https://cams.example.net/df/", pageURL},
		{"webhook", map[string]any{"url": "https://ntfy.example.net/cams"}, nil, "https://ntfy.example.net/cams", webhookOpt("URL", func(o webhook.Options) any { return o.URL })},
		{"webhook.url", "http://10.0.0.2:8080/hook", nil, "http://10.0.0.2:8080/hook", webhookOpt("URL", func(o webhook.Options) any { return o.URL })},
		{"webhook.url", "http://10.0.0.2:8080/hook", webOn, "http://127.0.0.1:9465/", webhookOpt("PageURL (the links)", func(o webhook.Options) any { return o.PageURL })},
		{"webhook.events", "fake", nil, false, webhookOpt("All", func(o webhook.Options) any { return o.All })},
		{"webhook.events", "all", nil, true, webhookOpt("All", func(o webhook.Options) any { return o.All })},
		{"webhook.timeout", "3s", nil, 3 * time.Second, webhookOpt("Timeout", func(o webhook.Options) any { return o.Timeout })},
		{"webhook.dir", "wh", nil, "/etc/deepfaked/wh", webhookOpt("Outbox.Dir", func(o webhook.Options) any { return o.Outbox.Dir })},
		{"webhook.max_bytes", 65536, nil, int64(65536), webhookOpt("Outbox.MaxBytes", func(o webhook.Options) any { return o.Outbox.MaxBytes })},
		{"webhook.max_age", "0s", nil, time.Duration(0), webhookOpt("Outbox.MaxAge", func(o webhook.Options) any { return o.Outbox.MaxAge })},
		{"webhook.max_age", "2h", nil, 2 * time.Hour, webhookOpt("Outbox.MaxAge", func(o webhook.Options) any { return o.Outbox.MaxAge })},
		{"web.url", configdoc.Delete{}, map[string]any{"web.enabled": true, "web.listen": "192.168.1.5:9465", "web.password_file": pw}, "http://192.168.1.5:9465/", pageURL},
		{"web.url", "https://cams.example.net/", map[string]any{"mqtt.homeassistant.enabled": true, "web.enabled": true}, true,
			haConfigs("configuration_url", func(m []mqttc.Retained) any {
				return strings.Contains(string(m[0].Payload), `"configuration_url":"https://cams.example.net/"`)
			})},
		{"mqtt.drain_timeout", "2m", nil, 2 * time.Minute, drainTimeout},
		{"capture", map[string]any{"io_timeout": "3s"}, nil, 3 * time.Second, ioTimeout},
		{"capture.io_timeout", "0s", nil, time.Duration(0), ioTimeout},
		{"capture.io_timeout", "30s", nil, 30 * time.Second, ioTimeout},
		{"capture.io_timeout", "20s", nil, 20 * time.Second, cameraOpt("IOTimeout", func(o capture.Options) any { return o.IOTimeout })},
		{"capture.decoder", "auto", nil, "auto", cameraOpt("Decoder", func(o capture.Options) any { return o.Decoder })},
		{"capture.decoder", "gstreamer", nil, "gstreamer", cameraOpt("Decoder", func(o capture.Options) any { return o.Decoder })},
		{"capture.decoder_threads", 1, nil, 1, cameraOpt("DecoderThreads", func(o capture.Options) any { return o.DecoderThreads })},
		{"capture.decoder_threads", 0, nil, 0, cameraOpt("DecoderThreads", func(o capture.Options) any { return o.DecoderThreads })},
		{"watchdog", map[string]any{"stall": "20s"}, nil, 20 * time.Second, watchdogStall},
		{"watchdog.stall", "15s", nil, 15 * time.Second, watchdogStall},
		{"model", map[string]any{"backbone": "b.onnx", "head": "h.onnx", "threads": 2}, nil, 2, engineOpt("Threads", func(o engine.Options) any { return o.Threads })},
		{"model.backbone", backbone, withHead, fileID(t, backbone), classifier("BackboneID", func(c *infer.Classifier) any { return c.BackboneID() })},
		{"model.head", ownHead, withBackbone, fileID(t, ownHead), classifier("HeadID", func(c *infer.Classifier) any { return c.HeadID() })},
		{"model.backbone_sha256", testenv.FileSHA256(t, backbone), map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": head}, fileID(t, backbone), classifier("BackboneID (pinned)", func(c *infer.Classifier) any { return c.BackboneID() })},
		{"model.head_sha256", testenv.FileSHA256(t, ownHead), map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": ownHead}, fileID(t, ownHead), classifier("HeadID (pinned)", func(c *infer.Classifier) any { return c.HeadID() })},
		{"model.head", "/opt/h.onnx", nil, "/opt/h.onnx", workflowOpt("Head (the install gate's)", func(o workflow.Options) any { return o.Head })},
		{"model.trusted_keys", []any{pub}, map[string]any{"model.runtime": runtime, "model.backbone": signedBackbone, "model.head": signedHead}, fileID(t, signedHead), classifier("HeadID (signed by a trusted key)", func(c *infer.Classifier) any { return c.HeadID() })},
		{"model.trusted_keys", []any{pub}, nil, []string{keyID}, workflowOpt("Signing.Keys (the install's)", func(o workflow.Options) any { return o.Signing.Keys.IDs() })},
		{"train.signing_key", signingKey, map[string]any{"model.trusted_keys": []any{pub}}, keyID, workflowOpt("Signing.Key", func(o workflow.Options) any { return modelsig.KeyID(o.Signing.Key.ID()) })},
		{"model.runtime", "lib/libonnxruntime.so", nil, "/etc/deepfaked/lib/libonnxruntime.so", engineOpt("Library", func(o engine.Options) any { return o.Library })},
		{"model.runtime", "libonnxruntime.so.1", nil, "libonnxruntime.so.1", engineOpt("Library", func(o engine.Options) any { return o.Library })},
		{"model.runtime", "", nil, "", engineOpt("Library (engine searches)", func(o engine.Options) any { return o.Library })},
		{"model.providers", []string{"cuda", "cpu"}, nil, []string{"cuda", "cpu"}, engineOpt("Providers", func(o engine.Options) any { return o.Providers })},
		{"model.providers", []string{}, nil, []string{"cpu"}, engineOpt("Providers", func(o engine.Options) any { return o.Providers })},
		{"model.threads", 0, nil, 0, engineOpt("Threads", func(o engine.Options) any { return o.Threads })},
		{"model.threads", 3, nil, 3, engineOpt("Threads", func(o engine.Options) any { return o.Threads })},
		{"model.threshold", 0, nil, spec.ThresholdOf(0), pipelineOpt("Threshold", func(o pipeline.Options) any { return o.Threshold })},
		{"model.batch_wait", "0s", nil, time.Duration(0), pipelineOpt("BatchWait", func(o pipeline.Options) any { return o.BatchWait })},
		{"model.batch_wait", "20ms", nil, 20 * time.Millisecond, pipelineOpt("BatchWait", func(o pipeline.Options) any { return o.BatchWait })},
		{"model.threshold", 0.7, nil, spec.ThresholdOf(0.7), pipelineOpt("Threshold", func(o pipeline.Options) any { return o.Threshold })},
		{"model.threshold", configdoc.Delete{}, nil, spec.NoThreshold, pipelineOpt("Threshold", func(o pipeline.Options) any { return o.Threshold })},
		{"model.tta", "none", map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": head}, infer.TTANone, classifier("TTA", func(c *infer.Classifier) any { return c.TTA() })},
		{"model.tta", "flip", map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": head}, infer.TTAFlip, classifier("TTA", func(c *infer.Classifier) any { return c.TTA() })},
		{"model.tta", "shift", map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": head}, infer.TTAShift, classifier("TTA", func(c *infer.Classifier) any { return c.TTA() })},
		{"model.tta", "flip-shift", map[string]any{"model.runtime": runtime, "model.backbone": backbone, "model.head": head}, infer.TTAFlipShift, classifier("TTA", func(c *infer.Classifier) any { return c.TTA() })},
		{"model.watch_head", false, nil, false, watchHead},
		{"model.watch_head", true, nil, true, watchHead},
		{"model.tensorrt", map[string]any{"int8": true}, nil, true, engineOpt("TensorRT.INT8", func(o engine.Options) any { return o.TensorRT.INT8 })},
		{"model.tensorrt.fp16", false, nil, false, engineOpt("TensorRT.FP16", func(o engine.Options) any { return o.TensorRT.FP16 })},
		{"model.tensorrt.fp16", true, nil, true, engineOpt("TensorRT.FP16", func(o engine.Options) any { return o.TensorRT.FP16 })},
		{"model.tensorrt.int8", false, nil, false, engineOpt("TensorRT.INT8", func(o engine.Options) any { return o.TensorRT.INT8 })},
		{"model.tensorrt.int8", true, nil, true, engineOpt("TensorRT.INT8", func(o engine.Options) any { return o.TensorRT.INT8 })},
		{"model.tensorrt.cache_dir", "trt", nil, "/etc/deepfaked/trt", engineOpt("TensorRT.CacheDir", func(o engine.Options) any { return o.TensorRT.CacheDir })},
		{"model.tensorrt.cache_dir", "/var/cache/df", nil, "/var/cache/df", engineOpt("TensorRT.CacheDir", func(o engine.Options) any { return o.TensorRT.CacheDir })},
		{"model.tensorrt.engine_cache", false, nil, false, engineOpt("TensorRT.EngineCache", func(o engine.Options) any { return o.TensorRT.EngineCache })},
		{"model.tensorrt.engine_cache", true, nil, true, engineOpt("TensorRT.EngineCache", func(o engine.Options) any { return o.TensorRT.EngineCache })},
		{"model.tensorrt.timing_cache", false, nil, false, engineOpt("TensorRT.TimingCache", func(o engine.Options) any { return o.TensorRT.TimingCache })},
		{"model.tensorrt.timing_cache", true, nil, true, engineOpt("TensorRT.TimingCache", func(o engine.Options) any { return o.TensorRT.TimingCache })},
		{"model.tensorrt.max_workspace_size", 1 << 20, nil, int64(1 << 20), engineOpt("TensorRT.MaxWorkspaceSize", func(o engine.Options) any { return o.TensorRT.MaxWorkspaceSize })},
		{"model.tensorrt.max_workspace_size", 4 << 30, nil, int64(4 << 30), engineOpt("TensorRT.MaxWorkspaceSize", func(o engine.Options) any { return o.TensorRT.MaxWorkspaceSize })},
		{"model.tensorrt.builder_optimization_level", 0, nil, 0, engineOpt("TensorRT.BuilderOptimizationLevel", func(o engine.Options) any { return o.TensorRT.BuilderOptimizationLevel })},
		{"model.tensorrt.builder_optimization_level", 5, nil, 5, engineOpt("TensorRT.BuilderOptimizationLevel", func(o engine.Options) any { return o.TensorRT.BuilderOptimizationLevel })},
		{"model.tensorrt.ep_context", false, nil, false, engineOpt("TensorRT.EPContext", func(o engine.Options) any { return o.TensorRT.EPContext })},
		{"model.tensorrt.ep_context", true, nil, true, engineOpt("TensorRT.EPContext", func(o engine.Options) any { return o.TensorRT.EPContext })},
		{"model.cuda", map[string]any{"device_id": 1}, nil, 1, engineOpt("CUDA.DeviceID", func(o engine.Options) any { return o.CUDA.DeviceID })},
		{"model.cuda.device_id", 0, nil, 0, engineOpt("CUDA.DeviceID", func(o engine.Options) any { return o.CUDA.DeviceID })},
		{"model.cuda.device_id", 3, nil, 3, engineOpt("CUDA.DeviceID", func(o engine.Options) any { return o.CUDA.DeviceID })},
		{"model.cuda.memory_limit", 0, nil, int64(0), engineOpt("CUDA.MemoryLimit", func(o engine.Options) any { return o.CUDA.MemoryLimit })},
		{"model.cuda.memory_limit", 2 << 30, nil, int64(2 << 30), engineOpt("CUDA.MemoryLimit", func(o engine.Options) any { return o.CUDA.MemoryLimit })},
		{"faces", map[string]any{"detector": "none"}, nil, face.None, detectorOpt("Kind", func(o face.Options) any { return o.Kind })},
		{"faces.detector", "yunet", map[string]any{"faces.model": "y.onnx"}, face.YuNet, detectorOpt("Kind", func(o face.Options) any { return o.Kind })},
		{"faces.detector", "haar", nil, face.Haar, detectorOpt("Kind", func(o face.Options) any { return o.Kind })},
		{"faces.model", "yunet.onnx", map[string]any{"faces.detector": "yunet"}, "/etc/deepfaked/yunet.onnx", detectorOpt("Model", func(o face.Options) any { return o.Model })},
		{"faces.margin", 0, nil, 0.0, preprocessOpt("Margin", func(p preprocess.Params) any { return p.Margin })},
		{"faces.margin", 0.35, nil, 0.35, preprocessOpt("Margin", func(p preprocess.Params) any { return p.Margin })},
		{"faces.min_size", 0, nil, 0, detectorOpt("MinSize", func(o face.Options) any { return o.MinSize })},
		{"faces.min_size", 64, nil, 64, detectorOpt("MinSize", func(o face.Options) any { return o.MinSize })},
		{"faces.score", 0, yunet, float32(0), detectorOpt("Score", func(o face.Options) any { return o.Score })},
		{"faces.score", 0.9, yunet, float32(0.9), detectorOpt("Score", func(o face.Options) any { return o.Score })},
		{"faces.max_faces", 1, nil, 1, pipelineOpt("MaxFaces", func(o pipeline.Options) any { return o.MaxFaces })},
		{"faces.max_faces", 16, nil, 16, engineOpt("MaxBatch (TensorRT's profile)", func(o engine.Options) any { return o.MaxBatch })},
		{"cameras", []any{map[string]any{"name": "door", "source": 0}}, nil, "0", cameraOpt("Source", func(o capture.Options) any { return o.Source })},
		{"cameras[0].name", "door", nil, "door", cameraOpt("Name", func(o capture.Options) any { return o.Name })},
		{"cameras[0].source", 0, nil, "0", cameraOpt("Source", func(o capture.Options) any { return o.Source })},
		{"cameras[0].source", "clip.mp4", nil, "/etc/deepfaked/clip.mp4", cameraOpt("Source", func(o capture.Options) any { return o.Source })},
		{"cameras[0].source", "rtsp://cam/live", nil, "rtsp://cam/live", cameraOpt("Source", func(o capture.Options) any { return o.Source })},
		{"cameras[0].fps", 0, nil, 0.0, cameraOpt("FPS", func(o capture.Options) any { return o.FPS })},
		{"cameras[0].fps", 2.5, nil, 2.5, cameraOpt("FPS", func(o capture.Options) any { return o.FPS })},
		{"cameras[0].loop", true, nil, true, cameraOpt("Loop", func(o capture.Options) any { return o.Loop })},
		{"cameras[0].loop", false, nil, false, cameraOpt("Loop", func(o capture.Options) any { return o.Loop })},
		{"cameras[0].width", 640, map[string]any{"cameras[0].height": 480}, 640, cameraOpt("Width", func(o capture.Options) any { return o.Width })},
		{"cameras[0].width", 0, nil, 0, cameraOpt("Width", func(o capture.Options) any { return o.Width })},
		{"cameras[0].height", 480, map[string]any{"cameras[0].width": 640}, 480, cameraOpt("Height", func(o capture.Options) any { return o.Height })},
		{"cameras[0].height", 0, nil, 0, cameraOpt("Height", func(o capture.Options) any { return o.Height })},
		{"cameras[0].decoder", "ffmpeg", map[string]any{"capture.decoder": "gstreamer"}, "ffmpeg", cameraOpt("Decoder", func(o capture.Options) any { return o.Decoder })},
		{"cameras[0].decoder", "nvv4l2decoder", nil, "nvv4l2decoder", cameraOpt("Decoder", func(o capture.Options) any { return o.Decoder })},
		{"train", map[string]any{"epochs": 3}, nil, 3, trainOpt("Epochs", func(c train.Config) any { return c.Epochs })},
		{"train.lr", 0.5, nil, 0.5, trainOpt("LR", func(c train.Config) any { return c.LR })},
		{"train.batch_size", 2, nil, 2, trainOpt("BatchSize", func(c train.Config) any { return c.BatchSize })},
		{"train.l1", 0, nil, 0.0, trainOpt("L1", func(c train.Config) any { return c.L1 })},
		{"train.l1", 0.01, nil, 0.01, trainOpt("L1", func(c train.Config) any { return c.L1 })},
		{"train.weight_decay", 0, nil, 0.0, trainOpt("WeightDecay", func(c train.Config) any { return c.WeightDecay })},
		{"train.epochs", 1, nil, 1, trainOpt("Epochs", func(c train.Config) any { return c.Epochs })},
		{"train.dropout", 0, nil, 0.0, trainOpt("Dropout", func(c train.Config) any { return c.Dropout })},
		{"train.dropout", 0.25, nil, 0.25, trainOpt("Dropout", func(c train.Config) any { return c.Dropout })},
		{"train.folds", 2, nil, 2, trainOpt("Folds", func(c train.Config) any { return c.Folds })},
		{"train.patience", 0, nil, 0, trainOpt("Patience", func(c train.Config) any { return c.Patience })},
		{"train.class_weights", "none", nil, false, trainOpt("ClassWeights", func(c train.Config) any { return c.ClassWeights })},
		{"train.class_weights", "balanced", nil, true, trainOpt("ClassWeights", func(c train.Config) any { return c.ClassWeights })},
		{"train.seed", 0, nil, int64(0), trainOpt("Seed", func(c train.Config) any { return c.Seed })},
		{"train.seed", 42, nil, int64(42), trainOpt("Seed", func(c train.Config) any { return c.Seed })},
		{"train.gate_margin", 0, nil, 0.0, workflowOpt("GateMargin", func(o workflow.Options) any { return o.GateMargin })},
		{"train.gate_margin", 0.05, nil, 0.05, workflowOpt("GateMargin", func(o workflow.Options) any { return o.GateMargin })},
		{"train.holdout", 0.5, nil, 0.5, workflowOpt("Holdout", func(o workflow.Options) any { return o.Holdout })},
		{"train.self_blend", 0, nil, features.SelfBlend{Seed: 1}, selfBlend},
		{"train.self_blend", 3, map[string]any{"train.seed": 9}, features.SelfBlend{Per: 3, Seed: 9}, selfBlend},
		{"train.dataset", "data", nil, "/etc/deepfaked/data", dataset},
		{"train.gate_set", "trusted", nil, "/etc/deepfaked/trusted", gateSet},
		{"train.gate_set", "/srv/gate", nil, "/srv/gate", gateSet},
		{"train.gate_set_crop", "same", nil, "face", gateSetCrop},
		{"train.gate_set_crop", "none", nil, "none", gateSetCrop},
		{"train.mix", "auto", nil, false, workflowOpt("Mix", func(o workflow.Options) any { return o.Mix })},
		{"train.mix", "auto", map[string]any{"train.self_blend": 2}, true, workflowOpt("Mix", func(o workflow.Options) any { return o.Mix })},
		{"train.mix", "never", map[string]any{"train.self_blend": 2}, false, workflowOpt("Mix", func(o workflow.Options) any { return o.Mix })},
		{"train.teach", map[string]any{"faces": 50}, nil, [2]int{50, 3}, teachFaces},
		{"train.teach.faces", 20, nil, [2]int{20, 3}, teachFaces},
		{"train.teach.every_n", 1, nil, [2]int{200, 1}, teachFaces},
		{"train.mix", "always", nil, true, workflowOpt("Mix", func(o workflow.Options) any { return o.Mix })},
		{"train.collect", map[string]any{"every_n": 5}, nil, 5, collectOpt("EveryN", func(o collect.Options) any { return o.EveryN })},
		{"train.collect.dir", "crops", nil, "/etc/deepfaked/crops", collectOpt("Dir", func(o collect.Options) any { return o.Dir })},
		{"train.collect.dir", "crops", nil, "/etc/deepfaked/crops", labelFolder("Collect", func(f collect.Folders) any { return f.Collect })},
		{"train.collect.band_low", 0, band, 0.0, collectOpt("BandLow", func(o collect.Options) any { return o.BandLow })},
		{"train.collect.band_low", 0.2, band, 0.2, collectOpt("BandLow", func(o collect.Options) any { return o.BandLow })},
		{"train.collect.band_high", 0, nil, 0.0, collectOpt("BandHigh", func(o collect.Options) any { return o.BandHigh })},
		{"train.collect.band_high", 0.8, nil, 0.8, collectOpt("BandHigh", func(o collect.Options) any { return o.BandHigh })},
		{"train.collect.every_n", 0, nil, 0, collectOpt("EveryN", func(o collect.Options) any { return o.EveryN })},
		{"train.collect.every_n", 7, nil, 7, collectOpt("EveryN", func(o collect.Options) any { return o.EveryN })},
		{"train.collect.max_files", 1, nil, 1, collectOpt("MaxFiles", func(o collect.Options) any { return o.MaxFiles })},
		{"train.collect.max_bytes", 0, nil, int64(0), collectOpt("MaxBytes", func(o collect.Options) any { return o.MaxBytes })},
		{"train.collect.max_bytes", 1 << 20, nil, int64(1 << 20), collectOpt("MaxBytes", func(o collect.Options) any { return o.MaxBytes })},
		{"train.collect.jpeg_quality", 1, nil, 1, collectOpt("JPEGQuality", func(o collect.Options) any { return o.JPEGQuality })},
		{"mqtt.homeassistant", map[string]any{"enabled": true}, nil, 8, haConfigs("len (5 for the camera, 3 for the daemon)", func(m []mqttc.Retained) any { return len(m) })},
		{"mqtt.homeassistant.enabled", false, nil, 0, haConfigs("len", func(m []mqttc.Retained) any { return len(m) })},
		{"mqtt.homeassistant.enabled", true, nil, 8, haConfigs("len (5 for the camera, 3 for the daemon)", func(m []mqttc.Retained) any { return len(m) })},
		{"mqtt.homeassistant.discovery_prefix", "ha/disc", map[string]any{"mqtt.homeassistant.enabled": true}, "ha/disc/binary_sensor/deepfaked_edge-01/cam1_deepfake/config",
			haConfigs("[0].Topic", func(m []mqttc.Retained) any { return m[0].Topic })},
		{"mqtt.verdicts", false, nil, false, pipelineOpt("Verdicts", func(o pipeline.Options) any { return o.Verdicts })},
		{"mqtt.verdicts", true, nil, true, pipelineOpt("Verdicts", func(o pipeline.Options) any { return o.Verdicts })},
		{"tracks", map[string]any{"rule": "ema"}, nil, track.EMA, trackOpt("Rule", func(o track.Options) any { return o.Rule })},
		{"tracks.iou", 0, nil, 0.0, trackOpt("IoU", func(o track.Options) any { return o.IoU })},
		{"tracks.iou", 0.5, nil, 0.5, trackOpt("IoU", func(o track.Options) any { return o.IoU })},
		{"tracks.max_missed", 0, nil, 0, trackOpt("MaxMissed", func(o track.Options) any { return o.MaxMissed })},
		{"tracks.max_missed", 25, nil, 25, trackOpt("MaxMissed", func(o track.Options) any { return o.MaxMissed })},
		{"tracks.rule", "confident", nil, track.Confident, trackOpt("Rule", func(o track.Options) any { return o.Rule })},
		{"tracks.min_frames", 1, nil, 1, trackOpt("MinFrames", func(o track.Options) any { return o.MinFrames })},
		{"tracks.ema_alpha", 1, nil, 1.0, trackOpt("EMAAlpha", func(o track.Options) any { return o.EMAAlpha })},
		{"tracks.confident", map[string]any{"count": 3}, nil, 3, trackOpt("ConfidentCount", func(o track.Options) any { return o.ConfidentCount })},
		{"tracks.confident.high", 0.9, nil, 0.9, trackOpt("ConfidentHigh", func(o track.Options) any { return o.ConfidentHigh })},
		{"tracks.confident.low", 0, nil, 0.0, trackOpt("ConfidentLow", func(o track.Options) any { return o.ConfidentLow })},
		{"tracks.confident.low", 0.1, nil, 0.1, trackOpt("ConfidentLow", func(o track.Options) any { return o.ConfidentLow })},
		{"tracks.confident.count", 1, nil, 1, trackOpt("ConfidentCount", func(o track.Options) any { return o.ConfidentCount })},
		{"tracks.margin", 0, nil, 0.0, trackOpt("Margin", func(o track.Options) any { return o.Margin })},
		{"tracks.margin", 0.1, nil, 0.1, trackOpt("Margin", func(o track.Options) any { return o.Margin })},
		{"tracks.update_delta", 0, nil, 0.0, pipelineOpt("Events.Track.UpdateDelta", func(o pipeline.Options) any { return o.Events.Track.UpdateDelta })},
		{"tracks.update_delta", 0.3, nil, 0.3, pipelineOpt("Events.Track.UpdateDelta", func(o pipeline.Options) any { return o.Events.Track.UpdateDelta })},
		{"events", map[string]any{"enabled": false}, nil, false, pipelineOpt("Events.Enabled", func(o pipeline.Options) any { return o.Events.Enabled })},
		{"events.enabled", false, nil, false, pipelineOpt("Events.Enabled", func(o pipeline.Options) any { return o.Events.Enabled })},
		{"events.enabled", true, nil, true, pipelineOpt("Events.Enabled", func(o pipeline.Options) any { return o.Events.Enabled })},
		{"events.tracks", "all", nil, true, pipelineOpt("Events.Track.All", func(o pipeline.Options) any { return o.Events.Track.All })},
		{"events.tracks", "fake", nil, false, pipelineOpt("Events.Track.All", func(o pipeline.Options) any { return o.Events.Track.All })},
		{"events.cooldown", "0s", nil, time.Duration(0), pipelineOpt("Events.Cooldown", func(o pipeline.Options) any { return o.Events.Cooldown })},
		{"events.cooldown", "5m", nil, 5 * time.Minute, pipelineOpt("Events.Cooldown", func(o pipeline.Options) any { return o.Events.Cooldown })},
		{"events.snapshots", map[string]any{"max_count": 3}, nil, 3, snapshotOpt("MaxCount", func(o snapshot.Options) any { return o.MaxCount })},
		{"events.snapshots.enabled", false, nil, false, shownBy("daemon.New: no snapshot store (TestEvents)", func(c *config.Config) any { return c.Events.Snapshots.Enabled })},
		{"events.snapshots.enabled", true, nil, true, shownBy("daemon.New: a snapshot store (TestEvents)", func(c *config.Config) any { return c.Events.Snapshots.Enabled })},
		{"events.snapshots.dir", "snaps", nil, "/etc/deepfaked/snaps", snapshotOpt("Dir", func(o snapshot.Options) any { return o.Dir })},
		{"events.snapshots.max_count", 1, nil, 1, snapshotOpt("MaxCount", func(o snapshot.Options) any { return o.MaxCount })},
		{"events.snapshots.max_age", "0s", nil, time.Duration(0), snapshotOpt("MaxAge", func(o snapshot.Options) any { return o.MaxAge })},
		{"events.snapshots.max_age", "1h", nil, time.Hour, snapshotOpt("MaxAge", func(o snapshot.Options) any { return o.MaxAge })},
		{"events.clips", map[string]any{"pre": "2s"}, nil, 2 * time.Second, clipOpt("Pre", func(o clip.Options) any { return o.Pre })},
		{"events.clips.enabled", false, nil, false, shownBy("daemon.New: no clip recorder (TestClips)", func(c *config.Config) any { return c.Events.Clips.Enabled })},
		{"events.clips.enabled", true, nil, true, shownBy("daemon.New: a clip recorder (TestClips)", func(c *config.Config) any { return c.Events.Clips.Enabled })},
		{"events.clips.tracks", "all", nil, true, clipOpt("All", func(o clip.Options) any { return o.All })},
		{"events.clips.tracks", "fake", nil, false, clipOpt("All", func(o clip.Options) any { return o.All })},
		{"events.clips.pre", "0s", nil, time.Duration(0), clipOpt("Pre", func(o clip.Options) any { return o.Pre })},
		{"events.clips.post", "20s", nil, 20 * time.Second, clipOpt("Post", func(o clip.Options) any { return o.Post })},
		{"events.clips.post", "0s", nil, time.Duration(0), clipOpt("Post (written at once)", func(o clip.Options) any { return o.Post })},
		{"events.clips.boxes", false, nil, false, clipOpt("Boxes", func(o clip.Options) any { return o.Boxes })},
		{"events.clips.max_width", 320, nil, 320, clipOpt("MaxWidth", func(o clip.Options) any { return o.MaxWidth })},
		{"events.clips.fps", 0, nil, 0.0, clipOpt("FPS (every frame)", func(o clip.Options) any { return o.FPS })},
		{"events.clips.fps", 5, nil, 5.0, clipOpt("FPS", func(o clip.Options) any { return o.FPS })},
		{"events.clips.dir", "clips", nil, "/etc/deepfaked/clips", clipOpt("Dir", func(o clip.Options) any { return o.Dir })},
		{"events.clips.max_age", "0s", nil, time.Duration(0), clipOpt("MaxAge", func(o clip.Options) any { return o.MaxAge })},
		{"events.clips.max_bytes", 1 << 20, nil, int64(1 << 20), clipOpt("MaxBytes", func(o clip.Options) any { return o.MaxBytes })},
		{"events.snapshots.publish", false, nil, false, shownBy("daemon.New: snapshots not published (TestEvents)", func(c *config.Config) any { return c.Events.Snapshots.Publish })},
		{"events.snapshots.publish", true, nil, true, shownBy("daemon.New: snapshots published (TestEvents)", func(c *config.Config) any { return c.Events.Snapshots.Publish })},
		{"events.enabled", false, map[string]any{"mqtt.homeassistant.enabled": true}, 0, haConfigs("the event entity's config (empty: removed)", func(m []mqttc.Retained) any { return len(m[3].Payload) })},
		{"events.enabled", true, map[string]any{"mqtt.homeassistant.enabled": true}, true, haConfigs("the event entity's config", func(m []mqttc.Retained) any { return strings.Contains(string(m[3].Payload), `"event_types"`) })},
		{"events.snapshots.publish", true, map[string]any{"mqtt.homeassistant.enabled": true, "events.enabled": true, "events.snapshots.enabled": true}, true,
			haConfigs("the image entity's config", func(m []mqttc.Retained) any { return strings.Contains(string(m[4].Payload), `"image_topic"`) })},
	}
}

// parse is base with row's keys written over it.
func parse(t *testing.T, r row) *config.Config {
	t.Helper()
	src := base(t)
	var err error
	for k, v := range r.with {
		if src, err = configdoc.Set(src, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if src, err = configdoc.Set(src, r.key, r.value); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(src, "/etc/deepfaked")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", src, err)
	}
	return c
}

// TestKeysReachComponents: every key's value, zero included where the config
// takes it, reaches the option of the component that uses it.
func TestKeysReachComponents(t *testing.T) {
	for _, r := range rows(t, t.TempDir()) {
		t.Run(r.key, func(t *testing.T) {
			if got := r.probe.get(t, parse(t, r)); !reflect.DeepEqual(got, r.want) {
				t.Errorf("%s: %#v gives %s = %#v, want %#v", r.key, r.value, r.probe.uses, got, r.want)
			}
		})
	}
}

// TestEveryDocumentedKeyHasARow: a key in docs/configuration.md without a row
// above fails, as does a number, duration or bool whose zero the config takes
// but no row writes, and a row for a key the docs do not list.
func TestEveryDocumentedKeyHasARow(t *testing.T) {
	keys, err := configdoc.Keys(docs(t))
	if err != nil {
		t.Fatal(err)
	}
	all := rows(t, t.TempDir())
	documented := map[string]bool{}
	zeros := map[string]any{"integer": 0, "number": 0, "duration": "0s", "bool": false}
	for _, k := range keys {
		path := k.Path()
		documented[path] = true
		var hasRow, hasZero bool
		zero, numeric := zeros[k.Type]
		for _, r := range all {
			if r.key == path {
				hasRow = true
				hasZero = hasZero || reflect.DeepEqual(r.value, zero)
			}
		}
		if !hasRow {
			t.Errorf("docs line %d: %s has no row in TestKeysReachComponents", k.Line, k.Name)
			continue
		}
		if numeric && !hasZero {
			src, err := configdoc.Set(base(t), path, zero)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse(src, "/etc/deepfaked"); err == nil {
				t.Errorf("docs line %d: %s takes %v but no row writes it", k.Line, k.Name, zero)
			}
		}
	}
	for _, r := range all {
		if !documented[r.key] {
			t.Errorf("row for %s, which docs/configuration.md does not list", r.key)
		}
	}
}

// TestPreprocessFollowsTheBackbone: size, normalisation and colour order come
// from the backbone's metadata; a BGR model gets BGR planes, an RGB one RGB,
// on a real Mat; the crop collector undoes the same order.
func TestPreprocessFollowsTheBackbone(t *testing.T) {
	c, err := config.Parse(base(t), "/etc/deepfaked")
	if err != nil {
		t.Fatal(err)
	}
	capturetest.CheckMats(t)
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(10, 20, 30, 0), 4, 4, gocv.MatTypeCV8UC3) // B, G, R
	defer img.Close()
	for _, tc := range []struct {
		order string
		want  [3]float32 // the planes, x/255
	}{
		{"RGB", [3]float32{30, 20, 10}},
		{"BGR", [3]float32{10, 20, 30}},
	} {
		t.Run(tc.order, func(t *testing.T) {
			meta := spec.DefaultMetadata()
			meta.InputSize, meta.Mean, meta.Std, meta.ColorOrder = 1, [3]float32{}, [3]float32{1, 1, 1}, tc.order
			p := setup.PreprocessParams(c, meta)
			if p.Size != 1 || p.Mean != meta.Mean || p.Std != meta.Std || p.ColorOrder != tc.order || p.Margin != c.Faces.Margin {
				t.Fatalf("params %+v from metadata %+v", p, meta)
			}
			if o := setup.CollectOptions(c, meta); o.ColorOrder != tc.order || o.Mean != meta.Mean || o.Std != meta.Std {
				t.Fatalf("collect options %+v from metadata %+v", o, meta)
			}
			pp, err := preprocess.New(p)
			if err != nil {
				t.Fatal(err)
			}
			defer pp.Close()
			dst := make([]float32, pp.Len())
			if err := pp.Fill(img, image.Rect(0, 0, 4, 4), dst); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				if d := dst[i]*255 - tc.want[i]; d > 1e-3 || d < -1e-3 {
					t.Fatalf("planes %v*255, want %v", dst, tc.want)
				}
			}
		})
	}
}

// TestModelRelease: the stats' release is the backbone signature's with
// trusted keys, the shipped card's for the shipped backbone, else none.
func TestModelRelease(t *testing.T) {
	backbone, _ := testenv.Models(t)
	dir := t.TempDir()
	pubText, keyText, err := modelsig.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	pub, keyPath, signed := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key"), filepath.Join(dir, "backbone.onnx")
	if err := errors.Join(os.WriteFile(pub, pubText, 0o644), os.WriteFile(keyPath, keyText, 0o600)); err != nil {
		t.Fatal(err)
	}
	key, err := modelsig.LoadPrivateKey(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(backbone)
	if err == nil {
		b, err = modelsig.Sign(b, key, modelsig.Backbone, "fleet r7")
	}
	if err == nil {
		err = os.WriteFile(signed, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := shipped.Get()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, backbone, id string
		keys               []string
		want               string
	}{
		{"signed, keys trusted", signed, "x", []string{pub}, "fleet r7"},
		{"signed, no keys", signed, "x", nil, ""},
		{"the shipped backbone", backbone, r.Backbones[0], nil, r.Name},
		{"another backbone", backbone, "0123456789ab", nil, ""},
	} {
		cfg := &config.Config{Model: config.Model{Backbone: tc.backbone, TrustedKeys: tc.keys}}
		if got := setup.ModelRelease(cfg, tc.id); got != tc.want {
			t.Errorf("%s: release %q, want %q", tc.name, got, tc.want)
		}
	}
}
