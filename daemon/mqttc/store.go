package mqttc

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// copyingStore is paho's memory store keeping its own copies of publish
// packets and handing out copies of those. After a reconnect paho's resume
// sets the DUP flag on every stored publish, including one just published that
// the writer goroutine is sending (and whose length field it is setting) at
// that moment: a data race (eclipse-paho/paho.mqtt.golang#703, open in v1.5.1).
// The packet in the store is never handed out, so nobody writes it.
type copyingStore struct {
	*mqtt.MemoryStore
}

func newCopyingStore() copyingStore { return copyingStore{mqtt.NewMemoryStore()} }

func (s copyingStore) Put(key string, p packets.ControlPacket) {
	s.MemoryStore.Put(key, copyPublish(p))
}

func (s copyingStore) Get(key string) packets.ControlPacket {
	return copyPublish(s.MemoryStore.Get(key))
}

// copyPublish copies a publish packet, sharing the payload, which is only read.
func copyPublish(p packets.ControlPacket) packets.ControlPacket {
	if pub, ok := p.(*packets.PublishPacket); ok {
		c := *pub
		return &c
	}
	return p
}
