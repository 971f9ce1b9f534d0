// Package outbox is an on-disk, append-only, segmented log of MQTT messages
// that have not yet been acknowledged by the broker. The publisher appends a
// message before it hands it to the MQTT client and acknowledges it when the
// broker's PUBACK (PUBCOMP for QoS 2) has arrived, so a message survives a
// broker outage, a lost connection, a daemon crash and a power cut.
//
// Durability: a record is written with one write(2) before Append returns
// and fsynced at most Options.Fsync later (0: before Append returns), so a
// power cut loses at most the last Fsync of messages. The acknowledged
// position is a small file replaced through internal/atomicfile (old or new
// after a power cut, never torn); it is saved at the same pace, so after a
// crash up to Fsync (at least a second) of delivered messages are sent
// again: delivery is at least once. A record torn by a crash mid-write
// fails its length or CRC check and is cut off at Open, with a log line; a
// bad record with good ones after it (a bad byte on the disk) is skipped to
// the next good record and counted (Stats.Corrupt), and nothing after it is
// lost.
//
// A full disk: to store a message the outbox first removes segments whose
// records were all delivered (the one taking appends too), then drops the
// oldest undelivered records (Stats.DroppedDiskFull); when even an empty
// outbox cannot store it, Append fails with ErrDiskFull (the publisher then
// sends the message without storing it) and the next Append tries again, so
// the outbox recovers by itself when space returns.
//
// A segment, the acknowledged position or the lock deleted or replaced under
// a running outbox (an operator's rm, a clean-up script) is noticed within a
// flush and written back from the file still held open (Stats.Recreated), so
// its undelivered records survive the next restart.
//
// Bounds: the pending records take at most Options.MaxBytes (on disk at
// most that plus one segment) and none is older than Options.MaxAge; when
// full, the oldest go first, counted in Stats and logged at most every 10 s.
package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
	"github.com/deepfaked/deepfaked/internal/ratelog"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("outbox: closed")

// ErrDiskFull is Append's error when the disk has no room for the message
// even with every delivered segment removed and every undelivered record
// dropped.
var ErrDiskFull = errors.New("outbox: the disk is full")

// Options configure an Outbox. Every field is taken as given.
type Options struct {
	Dir      string        // created if missing
	MaxBytes int64         // bound on the pending records' frames, > 0
	MaxAge   time.Duration // pending records older than this are dropped; 0: no bound
	// Fsync is how long a written record may wait for its fsync; 0 syncs
	// each record before Append returns.
	Fsync time.Duration
	Log   *slog.Logger     // nil discards
	Now   func() time.Time // nil is time.Now; tests move the clock
}

// Stats are the outbox's counters since Open, for logs and metrics.
type Stats struct {
	Pending     int   // records not yet acknowledged
	Bytes       int64 // their frames' size
	DroppedFull uint64
	DroppedAge  uint64
	// DroppedDiskFull: undelivered records dropped to make room on a full
	// disk. Corrupt: records lost to bad bytes in a segment, found at Open.
	DroppedDiskFull uint64
	Corrupt         uint64
	// Recreated: segments found deleted or replaced while open, and written
	// back.
	Recreated uint64
	// Next is the sequence number the next Append gets: records below it
	// were appended before (by this process or, still pending, an earlier one).
	Next uint64
	// Failing: the last Append failed (the disk is full or failing), so
	// messages are being lost, for readiness.
	Failing bool
}

const (
	ackFile    = "acked" // the first sequence number not yet acknowledged, in decimal
	lockFile   = "lock"  // flocked while open
	segSuffix  = ".seg"  // segments are named by their first record's seq, %020d.seg
	minSegment = 64 << 10
	maxSegment = 8 << 20
	// dropLogEvery rate-limits the "dropped" warning: a full outbox drops on
	// every append.
	dropLogEvery = 10 * time.Second
	// ackEvery is how often the acknowledged position is saved when records
	// are fsynced one by one; its staleness only causes resends.
	ackEvery = time.Second
)

type segment struct {
	first uint64 // from the file name
	last  uint64 // seq of its last record; first-1 while it has none
	path  string
	f     *os.File
	size  int64
}

type entry struct {
	seq  uint64
	seg  *segment
	off  int64
	size int64
	at   int64 // append time, Unix ns
}

// Outbox is an open outbox directory. Its methods are safe for concurrent use.
type Outbox struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	segBytes int64
	stop     chan struct{}
	done     chan struct{}
	lockF    *os.File // held (flock) until Close

	mu          sync.Mutex
	closed      bool
	segs        []*segment // oldest first; the last takes appends
	pending     []entry    // oldest first, seqs increasing
	bytes       int64
	next        uint64 // the next record's seq
	dirty       bool   // written since the last fsync
	dirDirty    bool   // a segment was created or removed since the last folder fsync
	savedLow    uint64 // the position the ack file holds
	droppedFull uint64
	droppedAge  uint64
	droppedDisk uint64
	corrupt     uint64
	recreated   uint64
	lostLogged  map[string]bool // segments that could not be written back, logged once
	failing     bool
	loggedDrops uint64
	lastDropLog time.Time
	changed     chan struct{} // closed and replaced on every append, ack, drop and Close
	buf         []byte
}

// Open opens (creating if needed) the outbox in opts.Dir: it cuts off a torn
// last record, removes acknowledged segments, applies the bounds and starts
// the background fsync.
func Open(opts Options) (*Outbox, error) {
	if opts.Dir == "" || opts.MaxBytes <= 0 || opts.MaxAge < 0 || opts.Fsync < 0 {
		return nil, fmt.Errorf("outbox: need a folder, max bytes > 0, max age and fsync >= 0 (got %q, %d, %v, %v)", opts.Dir, opts.MaxBytes, opts.MaxAge, opts.Fsync)
	}
	o := &Outbox{opts: opts, log: opts.Log, now: opts.Now, stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.log = o.log.With("outbox", opts.Dir)
	o.segBytes = min(max(opts.MaxBytes/8, minSegment), maxSegment)
	if err := atomicfile.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox %s: %w", opts.Dir, err)
	}
	if err := o.lock(); err != nil {
		return nil, err
	}
	if err := o.load(); err != nil {
		o.closeFiles()
		return nil, err
	}
	o.mu.Lock()
	o.trim()
	o.reap()
	o.mu.Unlock()
	if n := len(o.pending); n > 0 {
		o.log.Info("outbox: messages from an earlier run to deliver", "messages", n, "bytes", o.bytes, "first_seq", o.pending[0].seq)
	}
	go o.background()
	return o, nil
}

// lock takes the folder for this process: two writers would interleave
// records (a second daemon, or bench, on the same state_dir).
func (o *Outbox) lock() error {
	path := filepath.Join(o.opts.Dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("outbox %s is in use by another process (another deepfaked on this folder?): %w", o.opts.Dir, err)
	}
	o.lockF = f
	return nil
}

// load reads the ack file and every segment.
func (o *Outbox) load() error {
	low, err := o.readAck()
	if err != nil {
		return err
	}
	o.savedLow = low
	names, err := os.ReadDir(o.opts.Dir)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", o.opts.Dir, err)
	}
	for _, n := range names {
		name := n.Name()
		if atomicfile.IsTemp(name) { // an ack file write cut short
			_ = os.Remove(filepath.Join(o.opts.Dir, name))
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if !strings.HasSuffix(name, segSuffix) || err != nil {
			continue
		}
		o.segs = append(o.segs, &segment{first: first, last: first - 1, path: filepath.Join(o.opts.Dir, name)})
	}
	slices.SortFunc(o.segs, func(a, b *segment) int { return cmp.Compare(a.first, b.first) })
	o.next = max(low, 1)
	for _, s := range o.segs {
		if err := o.scan(s, low); err != nil {
			return err
		}
		if s.last+1 > o.next {
			o.next = s.last + 1
		}
	}
	return nil
}

func (o *Outbox) readAck() (uint64, error) {
	path := filepath.Join(o.opts.Dir, ackFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox %s: %w", path, err)
	}
	low, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// Atomic replaces never leave this; resending everything costs
		// duplicates, refusing to start would lose verdicts.
		o.log.Warn("outbox: unreadable acknowledged position; every stored message will be sent again", "file", path, "err", err)
		return 0, nil
	}
	return low, nil
}

// scan reads segment s, indexes its records from low on, and cuts the file
// at the first frame that is torn or out of sequence.
func (o *Outbox) scan(s *segment, low uint64) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", s.path, err)
	}
	s.f = f
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", s.path, err)
	}
	var off int64
	for off < int64(len(data)) {
		r, n, ok := frameAt(data, off)
		if ok && r.Seq != s.last+1 {
			ok = false
		}
		if !ok {
			next, nr, nn := resync(data, off, s.last)
			if next < 0 { // nothing good after it: the tail of a write a crash cut short
				o.log.Warn("outbox: torn record cut off (a crash during a write)", "file", s.path,
					"offset", off, "bytes_dropped", int64(len(data))-off)
				if err := f.Truncate(off); err != nil {
					return fmt.Errorf("outbox %s: truncate: %w", s.path, err)
				}
				if err := f.Sync(); err != nil {
					return fmt.Errorf("outbox %s: %w", s.path, err)
				}
				break
			}
			// Records the broker had acknowledged are no loss.
			lost := nr.Seq - max(s.last+1, min(low, nr.Seq))
			o.corrupt += lost
			o.log.Warn("outbox: corrupt records skipped; the records after them are kept", "file", s.path,
				"offset", off, "bytes_skipped", next-off, "records_lost", lost)
			off, r, n = next, nr, nn
		}
		s.last = r.Seq
		if r.Seq >= low {
			o.pending = append(o.pending, entry{seq: r.Seq, seg: s, off: off, size: int64(n), at: r.Time.UnixNano()})
			o.bytes += int64(n)
		}
		off += int64(n)
	}
	s.size = off
	return nil
}

// Append stores m and returns its seq. To make room it drops the oldest
// pending records; a message larger than MaxBytes is refused.
func (o *Outbox) Append(m Message) (_ uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer func() { o.failing = err != nil }()
	if o.closed {
		return 0, ErrClosed
	}
	size := frameSize(&m)
	if size > o.opts.MaxBytes {
		return 0, fmt.Errorf("outbox %s: message of %d bytes on %s exceeds the outbox's bound of %d bytes", o.opts.Dir, size, m.Topic, o.opts.MaxBytes)
	}
	now := o.now()
	r := Record{Seq: o.next, Time: now, Message: m}
	buf, err := appendFrame(o.buf[:0], &r)
	if err != nil {
		return 0, fmt.Errorf("outbox %s: %s: %w", o.opts.Dir, m.Topic, err)
	}
	o.buf = buf
	o.trim()
	for len(o.pending) > 0 && o.bytes+size > o.opts.MaxBytes {
		o.drop(&o.droppedFull)
	}
	s, err := o.store(buf, size)
	if err != nil {
		return 0, err
	}
	o.pending = append(o.pending, entry{seq: r.Seq, seg: s, off: s.size, size: size, at: now.UnixNano()})
	s.size += size
	s.last = r.Seq
	o.bytes += size
	o.next++
	o.dirty = true
	if o.opts.Fsync == 0 {
		if err := o.sync(); err != nil {
			return 0, err
		}
	}
	o.reap()
	o.notify()
	return r.Seq, nil
}

// store writes the frame buf (size bytes) at the end of the segment taking
// appends and returns that segment. On a full disk it makes room: first by
// removing segments whose records were all delivered (the one taking
// appends too), then by dropping the oldest undelivered records.
func (o *Outbox) store(buf []byte, size int64) (*segment, error) {
	for {
		s, err := o.writable(size)
		if err == nil {
			if _, err = s.f.WriteAt(buf, s.size); err != nil {
				_ = s.f.Truncate(s.size) // a partial write must not be followed by records
				err = fmt.Errorf("outbox %s: %w", s.path, err)
			}
		}
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EDQUOT) {
			return nil, err
		}
		switch {
		case o.removeDelivered():
		case len(o.pending) > 0:
			o.dropForRoom(size)
		default:
			return nil, fmt.Errorf("%w (%s): %w", ErrDiskFull, o.opts.Dir, err)
		}
	}
}

// dropForRoom drops the oldest undelivered records, at least size bytes and
// a file-system block of them, and gives their bytes back to the disk by
// punching a hole where they were (their segment keeps its length; Open
// skips the hole as it skips a corrupt record); a segment left with none
// goes whole.
func (o *Outbox) dropForRoom(size int64) {
	const block = 4096
	var freed int64
	for len(o.pending) > 0 && freed < size+block {
		first := o.pending[0]
		end := first.off
		for len(o.pending) > 0 && o.pending[0].seg == first.seg && freed < size+block {
			e := o.pending[0]
			freed, end = freed+e.size, e.off+e.size
			o.drop(&o.droppedDisk)
		}
		// Everything before end in the segment is gone (delivered or
		// dropped): one hole from its start, so the blocks straddling
		// earlier holes go too. Where holes are not supported the records
		// still go, and their segment with the last of them.
		_ = unix.Fallocate(int(first.seg.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, end)
	}
	o.reap()
}

// removeDelivered removes the segments holding no undelivered record, the
// one taking appends too (the next append starts a new one); it reports
// whether that freed any bytes.
func (o *Outbox) removeDelivered() bool {
	if len(o.segs) == 0 {
		return false
	}
	low, current := o.low(), o.segs[len(o.segs)-1]
	var kept []*segment
	freed := false
	for _, s := range o.segs {
		if s.last >= low {
			kept = append(kept, s)
			continue
		}
		_ = s.f.Close()
		if err := os.Remove(s.path); err != nil {
			o.log.Warn("outbox: remove delivered segment", "file", s.path, "err", err)
		}
		freed = freed || s.size > 0
	}
	if len(kept) == len(o.segs) {
		return false
	}
	if len(kept) == 0 || kept[len(kept)-1] != current {
		o.dirty = false // what was written unsynced is gone with its segment
	}
	o.segs, o.dirDirty = kept, true
	return freed
}

// writable is the segment to append size bytes to, starting a new one when
// the last is full (or there is none).
func (o *Outbox) writable(size int64) (*segment, error) {
	if n := len(o.segs); n > 0 && (o.segs[n-1].size == 0 || o.segs[n-1].size+size <= o.segBytes) {
		return o.segs[n-1], nil
	}
	if o.dirty { // the full segment's last records, before its successor exists
		if err := o.sync(); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(o.opts.Dir, fmt.Sprintf("%020d%s", o.next, segSuffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	s := &segment{first: o.next, last: o.next - 1, path: path, f: f}
	o.segs = append(o.segs, s)
	o.dirDirty = true
	return s, nil
}

// Read returns the first pending record whose seq is at least from, waiting
// for one to be appended until ctx is done.
func (o *Outbox) Read(ctx context.Context, from uint64) (Record, error) {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return Record{}, ErrClosed
		}
		o.trim()
		i := sort.Search(len(o.pending), func(i int) bool { return o.pending[i].seq >= from })
		if i < len(o.pending) {
			r, err := o.read(o.pending[i])
			o.mu.Unlock()
			return r, err
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

func (o *Outbox) read(e entry) (Record, error) {
	if int64(cap(o.buf)) < e.size {
		o.buf = make([]byte, e.size)
	}
	b := o.buf[:e.size]
	if _, err := e.seg.f.ReadAt(b, e.off); err != nil {
		return Record{}, fmt.Errorf("outbox %s: read seq %d: %w", e.seg.path, e.seq, err)
	}
	r, err := decodeFrame(b)
	if err != nil || r.Seq != e.seq {
		return Record{}, fmt.Errorf("outbox %s: seq %d at offset %d: %w", e.seg.path, e.seq, e.off, errTorn)
	}
	return r, nil
}

// Ack removes every pending record up to and including seq: the broker has
// acknowledged them. Records already dropped are ignored.
func (o *Outbox) Ack(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := sort.Search(len(o.pending), func(i int) bool { return o.pending[i].seq > seq })
	if i == 0 {
		return
	}
	for _, e := range o.pending[:i] {
		o.bytes -= e.size
	}
	o.pending = o.pending[i:]
	o.reap()
	o.notify()
}

// WaitEmpty waits until every record has been acknowledged (or dropped), or
// ctx is done.
func (o *Outbox) WaitEmpty(ctx context.Context) error {
	for {
		o.mu.Lock()
		n, ch, closed := len(o.pending), o.changed, o.closed
		o.mu.Unlock()
		switch {
		case n == 0:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return Stats{Pending: len(o.pending), Bytes: o.bytes, DroppedFull: o.droppedFull, DroppedAge: o.droppedAge,
		DroppedDiskFull: o.droppedDisk, Corrupt: o.corrupt, Recreated: o.recreated, Next: o.next, Failing: o.failing}
}

// trim drops the records older than MaxAge.
func (o *Outbox) trim() {
	if o.opts.MaxAge == 0 {
		return
	}
	oldest := o.now().Add(-o.opts.MaxAge).UnixNano()
	for len(o.pending) > 0 && o.pending[0].at < oldest {
		o.drop(&o.droppedAge)
	}
}

// drop removes the oldest pending record unsent and counts it.
func (o *Outbox) drop(counter *uint64) {
	o.bytes -= o.pending[0].size
	o.pending = o.pending[1:]
	*counter++
	o.notify()
}

// low is the first seq not yet acknowledged or dropped.
func (o *Outbox) low() uint64 {
	if len(o.pending) > 0 {
		return o.pending[0].seq
	}
	return o.next
}

// reap removes the segments, other than the one taking appends, that hold
// no pending record.
func (o *Outbox) reap() {
	low := o.low()
	for len(o.segs) > 1 && o.segs[0].last < low {
		s := o.segs[0]
		_ = s.f.Close()
		if err := os.Remove(s.path); err != nil {
			o.log.Warn("outbox: remove delivered segment", "file", s.path, "err", err)
		}
		o.segs = o.segs[1:]
		o.dirDirty = true
	}
}

func (o *Outbox) notify() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// sync fsyncs the segment taking appends and, after a segment was created
// or removed, the folder.
func (o *Outbox) sync() error {
	if o.dirty && len(o.segs) > 0 {
		s := o.segs[len(o.segs)-1]
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("outbox %s: fsync: %w", s.path, err)
		}
		o.dirty = false
	}
	if o.dirDirty {
		d, err := os.Open(o.opts.Dir)
		if err != nil {
			return fmt.Errorf("outbox %s: %w", o.opts.Dir, err)
		}
		err = d.Sync()
		d.Close()
		if err != nil && !errors.Is(err, os.ErrInvalid) {
			return fmt.Errorf("outbox %s: fsync: %w", o.opts.Dir, err)
		}
		o.dirDirty = false
	}
	return nil
}

// background fsyncs within opts.Fsync, saves the acknowledged position and
// logs drops, until Close.
func (o *Outbox) background() {
	defer close(o.done)
	every := o.opts.Fsync
	if every == 0 {
		every = ackEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	flushLog := ratelog.New(time.Minute)
	for {
		select {
		case <-o.stop:
			return
		case <-tick.C:
			if err := o.flush(); err != nil { // a full disk fails every flush: say so once a minute
				flushLog.Log(o.log, slog.LevelError, o.now(), "outbox: flush", "err", err)
			}
		}
	}
}

// flush fsyncs what is written, saves the acknowledged position when it moved
// and logs new drops (at most every dropLogEvery).
func (o *Outbox) flush() error {
	o.mu.Lock()
	if o.closed && o.segs == nil {
		o.mu.Unlock()
		return nil
	}
	o.verify()
	err := o.sync()
	low, saved := o.low(), o.savedLow
	drops := o.droppedFull + o.droppedAge
	now := o.now()
	if drops > o.loggedDrops && (o.closed || now.Sub(o.lastDropLog) >= dropLogEvery) {
		o.log.Warn("outbox: oldest undelivered messages dropped to stay within bounds",
			"dropped", drops-o.loggedDrops, "dropped_full_total", o.droppedFull, "dropped_age_total", o.droppedAge,
			"pending", len(o.pending), "max_bytes", o.opts.MaxBytes, "max_age", o.opts.MaxAge)
		o.loggedDrops, o.lastDropLog = drops, now
	}
	o.mu.Unlock()
	if low == saved {
		return err
	}
	// Outside the lock: Append does not wait for this fsync. Only flush
	// writes the file, and flush runs on one goroutine (or after it ended).
	if werr := atomicfile.Write(filepath.Join(o.opts.Dir, ackFile), []byte(strconv.FormatUint(low, 10)+"\n"), 0o600); werr != nil {
		return errors.Join(err, fmt.Errorf("outbox: %w", werr))
	}
	o.mu.Lock()
	o.savedLow = low
	o.mu.Unlock()
	return err
}

// verify notices files deleted or replaced under the open outbox and puts
// them back: each segment from the file this process still holds open (same
// bytes, same offsets), the lock taken again, and the acknowledged position
// saved again at this flush. A stat per file a flush.
func (o *Outbox) verify() {
	if o.closed {
		return
	}
	if !sameFile(o.lockF, filepath.Join(o.opts.Dir, lockFile)) {
		o.relock()
	}
	if _, err := os.Stat(filepath.Join(o.opts.Dir, ackFile)); errors.Is(err, os.ErrNotExist) && o.savedLow != 0 {
		o.savedLow = 0 // no position is 0: flush writes the file again
	}
	for _, s := range o.segs {
		if sameFile(s.f, s.path) {
			continue
		}
		if err := o.rewrite(s); err != nil {
			o.logLost(s.path, "outbox: segment deleted or replaced while running, and it cannot be written back; its undelivered records are lost at the next restart", err)
			continue
		}
		delete(o.lostLogged, s.path)
		o.recreated++
		o.log.Warn("outbox: segment deleted or replaced while running; written back from the open file", "file", s.path, "bytes", s.size)
	}
}

// sameFile reports whether path is still the file f has open.
func sameFile(f *os.File, path string) bool {
	if f == nil {
		return true
	}
	a, err := f.Stat()
	if err != nil {
		return true // nothing to compare with; the next write reports it
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// rewrite writes segment s back to its path from its open file, atomically,
// and continues on the new file.
func (o *Outbox) rewrite(s *segment) error {
	if err := atomicfile.MkdirAll(o.opts.Dir, 0o700); err != nil {
		return err
	}
	data := make([]byte, s.size) // rare; a segment is at most a few MiB
	if _, err := s.f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("read the open file: %w", err)
	}
	if err := atomicfile.Write(s.path, data, 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	_ = s.f.Close()
	s.f = f
	return nil
}

// relock takes the lock again when its file went (a removed folder), so that
// a second process still cannot open the folder.
func (o *Outbox) relock() {
	old, path := o.lockF, filepath.Join(o.opts.Dir, lockFile)
	err := atomicfile.MkdirAll(o.opts.Dir, 0o700)
	if err == nil {
		err = o.lock()
	}
	if err != nil {
		o.logLost(path, "outbox: lock file deleted while running, and it cannot be taken again", err)
		return
	}
	_ = old.Close()
	delete(o.lostLogged, path)
	o.log.Warn("outbox: lock file deleted or replaced while running; taken again", "file", path)
}

// logLost logs a file that cannot be put back once: verify retries it every
// flush.
func (o *Outbox) logLost(path, msg string, err error) {
	if o.lostLogged[path] {
		return
	}
	o.log.Error(msg, "file", path, "err", err)
	if o.lostLogged == nil {
		o.lostLogged = map[string]bool{}
	}
	o.lostLogged[path] = true
}

// Close fsyncs, saves the acknowledged position and closes the files;
// Read and WaitEmpty return ErrClosed.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.notify()
	o.mu.Unlock()
	close(o.stop)
	<-o.done
	err := o.flush()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeFiles()
	return err
}

func (o *Outbox) closeFiles() {
	for _, s := range o.segs {
		if s.f != nil {
			_ = s.f.Close()
		}
	}
	o.segs = nil
	if o.lockF != nil {
		_ = o.lockF.Close() // releases the flock
		o.lockF = nil
	}
}
