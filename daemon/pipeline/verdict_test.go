package pipeline

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkVerdictPayload measures the per-frame publishing path: the verdict
// JSON, alone and handed to the daemon's publisher on a real (embedded)
// broker, acknowledged at QoS 1. It backs the choice of encoding/json in infer.
func BenchmarkVerdictPayload(b *testing.B) {
	v := contract.Verdict{Device: "edge-01", Camera: "cam1", Frame: 12345, TS: time.Now(), Label: contract.LabelFake, PFake: 0.87654321, Threshold: 0.5,
		Faces: []contract.FaceResult{{Box: [4]int{100, 120, 80, 80}, PFake: 0.87654321, Label: contract.LabelFake},
			{Box: [4]int{300, 90, 60, 60}, PFake: 0.0123456, Label: contract.LabelReal}},
		Model: contract.ModelIDs{Backbone: "0123456789ab", Head: "ba9876543210", Precision: "int8"}, LatencyMS: 23.456}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+publish", func(b *testing.B) {
		br, err := mqttc.StartBroker(mqttc.BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		pub, err := mqttc.Connect(context.Background(), mqttc.Options{Outbox: testenv.Outbox(b), Broker: br.URL(), ClientID: "bench", QoS: 1, ConnectTimeout: 10 * time.Second}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			payload, err := json.Marshal(&v)
			if err != nil {
				b.Fatal(err)
			}
			for pub.Publish(contract.Topics{Prefix: "bench"}.Verdict("cam1"), payload) != nil { // full: let the broker catch up
				runtime.Gosched()
			}
		}
		if err := pub.Close(context.Background()); err != nil { // every message acknowledged
			b.Fatal(err)
		}
	})
}
