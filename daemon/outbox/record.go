package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// Message is one MQTT publish waiting for its broker's acknowledgement.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Record is a Message as the outbox holds it: Seq orders it (increasing by
// one per message, across restarts), Time is when it was appended.
type Record struct {
	Seq  uint64
	Time time.Time
	Message
}

// A record on disk is a frame: body length (uint32 LE), CRC-32C of the body
// (uint32 LE), body. The body is seq (uint64), append time (Unix ns, int64),
// QoS (byte), flags (byte: 1 = retained), topic length (uint16), topic, payload.
// The length and CRC let Open find where a write torn by a crash begins.
const (
	frameHeader = 8
	bodyHeader  = 8 + 8 + 1 + 1 + 2
	flagRetain  = 1
	// maxBody bounds one record: the largest MQTT payload (256 MiB) and topic.
	maxBody = 256<<20 + math.MaxUint16 + bodyHeader
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn is a frame cut short or failing its CRC: the tail of a crashed write.
var errTorn = errors.New("torn or corrupt record")

// frameSize is the bytes r takes on disk.
func frameSize(m *Message) int64 {
	return int64(frameHeader + bodyHeader + len(m.Topic) + len(m.Payload))
}

// appendFrame appends r's frame to dst.
func appendFrame(dst []byte, r *Record) ([]byte, error) {
	if len(r.Topic) > math.MaxUint16 {
		return dst, fmt.Errorf("topic of %d bytes is longer than MQTT allows", len(r.Topic))
	}
	n := bodyHeader + len(r.Topic) + len(r.Payload)
	if n > maxBody {
		return dst, fmt.Errorf("payload of %d bytes is larger than MQTT allows", len(r.Payload))
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // the CRC, below
	body := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, r.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	var flags byte
	if r.Retained {
		flags |= flagRetain
	}
	dst = append(dst, r.QoS, flags)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = append(dst, r.Payload...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[body:], castagnoli))
	return dst, nil
}

// frameLen reads a frame header and returns the whole frame's length, or
// errTorn when the header is short or names an impossible body.
func frameLen(hdr []byte) (int, error) {
	if len(hdr) < frameHeader {
		return 0, errTorn
	}
	n := binary.LittleEndian.Uint32(hdr)
	if n < bodyHeader || n > maxBody {
		return 0, errTorn
	}
	return frameHeader + int(n), nil
}

// frameAt decodes the frame at off in data; ok is false when there is no
// whole, intact frame there.
func frameAt(data []byte, off int64) (r Record, n int64, ok bool) {
	l, err := frameLen(data[off:])
	if err != nil || off+int64(l) > int64(len(data)) {
		return Record{}, 0, false
	}
	r, err = decodeFrame(data[off : off+int64(l)])
	return r, int64(l), err == nil
}

// resync finds the first intact frame after a bad one at off whose seq
// follows last: the records between are lost, those after it kept. A
// candidate must carry a seq no further past last than the skipped bytes
// could hold records, which rules out almost every offset before its CRC is
// checked. next is -1 when there is none (a torn tail).
func resync(data []byte, off int64, last uint64) (next int64, r Record, n int64) {
	const minFrame = frameHeader + bodyHeader
	for p := off + 1; p+minFrame <= int64(len(data)); p++ {
		seq := binary.LittleEndian.Uint64(data[p+frameHeader:])
		if seq <= last || seq > last+1+uint64(p-off)/minFrame {
			continue
		}
		if r, n, ok := frameAt(data, p); ok {
			return p, r, n
		}
	}
	return -1, Record{}, 0
}

// decodeFrame decodes one whole frame (as frameLen measured it). The
// payload is a copy, so frame may be reused.
func decodeFrame(frame []byte) (Record, error) {
	n, err := frameLen(frame)
	if err != nil || len(frame) != n {
		return Record{}, errTorn
	}
	body := frame[frameHeader:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(frame[4:]) {
		return Record{}, errTorn
	}
	tl := int(binary.LittleEndian.Uint16(body[18:]))
	if bodyHeader+tl > len(body) {
		return Record{}, errTorn
	}
	qos, flags := body[16], body[17]
	if qos > 2 || flags&^flagRetain != 0 {
		return Record{}, errTorn
	}
	r := Record{
		Seq:  binary.LittleEndian.Uint64(body),
		Time: time.Unix(0, int64(binary.LittleEndian.Uint64(body[8:]))),
		Message: Message{
			QoS:      qos,
			Retained: flags&flagRetain != 0,
			Topic:    string(body[bodyHeader : bodyHeader+tl]),
			Payload:  append([]byte(nil), body[bodyHeader+tl:]...),
		},
	}
	return r, nil
}
