package testenv

import (
	"bytes"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Retained returns what the broker at url keeps retained under prefix/#, as
// a new subscriber finds it: topic to payload.
//
// Rather than wait a fixed time for the retained messages, it publishes a
// non-retained sentinel once subscribed and waits for it: the broker queues a
// subscription's retained messages before it handles any later publish, so
// the sentinel comes after all of them.
func Retained(t testing.TB, url, prefix string) map[string][]byte {
	t.Helper()
	sentinel := prefix + "/zz-test-sentinel"
	var mu sync.Mutex
	got := map[string][]byte{}
	seen := make(chan struct{})
	var once sync.Once // a QoS 1 redelivery may bring the sentinel twice
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("testenv-retained").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe(prefix+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() == sentinel {
			once.Do(func() { close(seen) })
			return
		}
		if !m.Retained() {
			t.Errorf("%s: delivered not retained", m.Topic())
		}
		mu.Lock()
		defer mu.Unlock()
		got[m.Topic()] = bytes.Clone(m.Payload())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s/#: %v", prefix, tok.Error())
	}
	if tok := c.Publish(sentinel, 1, false, "end"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", sentinel, tok.Error())
	}
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		t.Fatalf("sentinel %s not delivered within 30s", sentinel)
	}
	c.Unsubscribe(prefix + "/#").WaitTimeout(time.Second)
	mu.Lock()
	defer mu.Unlock()
	return got
}
