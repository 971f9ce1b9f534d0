package features

import (
	"encoding/binary"
	"math"
)

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// le encodes v little-endian into buf (len 4·len(v)).
func le(v []float32, buf []byte) []byte {
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	return buf[:4*len(v)]
}

// fromLE decodes buf, which aliases dst, in place.
func fromLE(dst []float32, buf []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
}
