package features

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// Key says which features a cache holds: an image's features depend on its
// bytes and on these. Changing any of them starts a separate cache.
type Key struct {
	Backbone  string // the backbone's ID (sha256 prefix of its file)
	InputSize int
	Crop      string // crop mode with everything that changes the crop, e.g. "none" or "face:haar:margin=0.2:..."
}

func (k Key) dir() string {
	h := sha256.Sum256([]byte(k.Crop))
	return fmt.Sprintf("%s-%d-%s", k.Backbone, k.InputSize, hex.EncodeToString(h[:4]))
}

// Digest is the sha256 of an image file's bytes.
type Digest [sha256.Size]byte

// Cache is an append-only pack of feature vectors for one Key: features.f32
// holds the vectors (little-endian float32, Dim each) and index.bin the
// digest of the image of each, in the same order. Vectors are written before
// their digest, so a crash leaves at most a tail that Open drops. An
// exclusive lock on the index keeps two processes from appending at once.
type Cache struct {
	dir       string
	dim       int
	pack, idx *os.File
	offsets   map[Digest]int64
	n         int64
	buf       []byte
}

type cacheMeta struct {
	Backbone  string `json:"backbone"`
	InputSize int    `json:"input_size"`
	Crop      string `json:"crop"`
	Dim       int    `json:"dim"`
}

// OpenCache opens (creating it if needed) the cache for key under root, for
// vectors of dim floats. It blocks while another process holds it.
func OpenCache(root string, key Key, dim int) (*Cache, error) {
	if key.Backbone == "" || key.InputSize < 1 || key.Crop == "" || dim < 1 {
		return nil, fmt.Errorf("feature cache %s: incomplete key %+v or dimension %d", root, key, dim)
	}
	dir := filepath.Join(root, key.dir())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	meta := cacheMeta{Backbone: key.Backbone, InputSize: key.InputSize, Crop: key.Crop, Dim: dim}
	metaPath := filepath.Join(dir, "meta.json")
	c := &Cache{dir: dir, dim: dim, offsets: map[Digest]int64{}, buf: make([]byte, 4*dim)}
	var err error
	if c.idx, err = os.OpenFile(filepath.Join(dir, "index.bin"), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	if err := syscall.Flock(int(c.idx.Fd()), syscall.LOCK_EX); err != nil {
		c.idx.Close()
		return nil, fmt.Errorf("feature cache %s: lock: %w", dir, err)
	}
	// Under the lock: no other process is writing meta.json now.
	if err := atomicfile.RemoveTemps(metaPath); err != nil {
		c.idx.Close()
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	b, err := os.ReadFile(metaPath)
	switch {
	case err == nil && len(b) > 0:
		var have cacheMeta
		if err := json.Unmarshal(b, &have); err != nil || have != meta {
			c.idx.Close()
			return nil, fmt.Errorf("feature cache %s: meta.json says %.200q, want %+v: delete the folder", dir, b, meta)
		}
	// Missing, or empty as a plain write cut short by a crash left it
	// (before meta.json was written atomically): the folder's name is the key.
	case err == nil || errors.Is(err, fs.ErrNotExist):
		b, _ := json.Marshal(meta)
		if err := atomicfile.Write(metaPath, b, 0o644); err != nil {
			c.idx.Close()
			return nil, fmt.Errorf("feature cache: %w", err)
		}
	default:
		c.idx.Close()
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	if c.pack, err = os.OpenFile(filepath.Join(dir, "features.f32"), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		c.idx.Close()
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	if err := c.load(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// load reads the index and drops a torn tail.
func (c *Cache) load() error {
	idx, err := os.ReadFile(c.idx.Name())
	if err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	st, err := c.pack.Stat()
	if err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	vec := int64(4 * c.dim)
	c.n = min(int64(len(idx)/sha256.Size), st.Size()/vec)
	if err := c.idx.Truncate(c.n * sha256.Size); err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	if err := c.pack.Truncate(c.n * vec); err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	for i := range c.n {
		var d Digest
		copy(d[:], idx[i*sha256.Size:])
		c.offsets[d] = i * vec
	}
	return nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Dim is the number of floats per vector.
func (c *Cache) Dim() int { return c.dim }

// Len is the number of vectors held.
func (c *Cache) Len() int { return int(c.n) }

// Offset is where the features of the image with digest d start in the pack.
func (c *Cache) Offset(d Digest) (int64, bool) {
	off, ok := c.offsets[d]
	return off, ok
}

// Put appends the features of the image with digest d (a no-op when held)
// and returns their offset.
func (c *Cache) Put(d Digest, features []float32) (int64, error) {
	if off, ok := c.offsets[d]; ok {
		return off, nil
	}
	if len(features) != c.dim {
		return 0, fmt.Errorf("feature cache %s: %d floats, want %d", c.dir, len(features), c.dim)
	}
	off := c.n * int64(4*c.dim)
	if _, err := c.pack.WriteAt(le(features, c.buf), off); err != nil {
		return 0, fmt.Errorf("feature cache %s: %w", c.dir, err)
	}
	if _, err := c.idx.WriteAt(d[:], c.n*sha256.Size); err != nil {
		return 0, fmt.Errorf("feature cache %s: %w", c.dir, err)
	}
	c.offsets[d] = off
	c.n++
	return off, nil
}

// Read copies the vector at off into dst (Dim floats).
func (c *Cache) Read(off int64, dst []float32) error {
	if len(dst) != c.dim {
		return fmt.Errorf("feature cache %s: read into %d floats, want %d", c.dir, len(dst), c.dim)
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*c.dim)
	if _, err := c.pack.ReadAt(buf, off); err != nil {
		return fmt.Errorf("feature cache %s: read at %d: %w", c.dir, off, err)
	}
	if !littleEndian {
		fromLE(dst, buf)
	}
	return nil
}

// Sync makes what was Put durable.
func (c *Cache) Sync() error {
	if err := errors.Join(c.pack.Sync(), c.idx.Sync()); err != nil {
		return fmt.Errorf("feature cache %s: %w", c.dir, err)
	}
	return nil
}

// Close syncs, unlocks and closes the cache.
func (c *Cache) Close() error {
	var errs []error
	if c.pack != nil {
		errs = append(errs, c.pack.Sync(), c.pack.Close())
	}
	errs = append(errs, c.idx.Sync(), c.idx.Close()) // closing releases the lock
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("feature cache %s: %w", c.dir, err)
	}
	return nil
}

func (k Key) String() string {
	return k.Backbone + "/" + strconv.Itoa(k.InputSize) + "/" + k.Crop
}
