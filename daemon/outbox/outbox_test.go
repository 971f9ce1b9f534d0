package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deepfaked/deepfaked/internal/poll"
)

// syncBuffer collects log lines that the background goroutine writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func open(t *testing.T, o Options) (*Outbox, *syncBuffer) {
	t.Helper()
	logs := new(syncBuffer)
	o.Log = slog.New(slog.NewTextHandler(logs, nil))
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 20
	}
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, logs
}

func msg(i int) Message {
	return Message{Topic: fmt.Sprintf("cam%d/verdict", i%3), Payload: fmt.Appendf(nil, `{"n":%d}`, i), QoS: 1, Retained: i%5 == 0}
}

func appendN(t *testing.T, b *Outbox, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := b.Append(msg(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads every pending record in order, without acknowledging.
func readAll(t *testing.T, b *Outbox) []Record {
	t.Helper()
	var out []Record
	var from uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r, err := b.Read(ctx, from)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		from = r.Seq + 1
	}
}

func payloads(rs []Record) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r.Payload))
	}
	return strings.Join(s, " ")
}

func TestRestartReplaysUnacknowledgedOnly(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir})
	appendN(t, b, 0, 10)
	r, err := b.Read(context.Background(), 0)
	if err != nil || r.Seq != 1 || r.Message.Topic != msg(0).Topic || !r.Retained || r.QoS != 1 {
		t.Fatalf("first record %+v, %v", r, err)
	}
	b.Ack(4)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ = open(t, Options{Dir: dir})
	got := readAll(t, b)
	if len(got) != 6 || got[0].Seq != 5 || payloads(got) != `{"n":4} {"n":5} {"n":6} {"n":7} {"n":8} {"n":9}` {
		t.Fatalf("after restart: %d records from seq %d: %s", len(got), got[0].Seq, payloads(got))
	}
	seq, err := b.Append(msg(10))
	if err != nil || seq != 11 {
		t.Fatalf("next seq %d, %v; want 11", seq, err)
	}
}

// crash ends b as a killed process would: no flush, files (and the flock) closed.
func crash(b *Outbox) {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	b.mu.Lock()
	b.closeFiles()
	b.mu.Unlock()
}

// TestCrashKeepsUnacknowledged: without Close (a crash), what was appended is
// there at the next Open, and what was acknowledged a flush ago is not.
func TestCrashKeepsUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir, Fsync: 20 * time.Millisecond})
	appendN(t, b, 0, 5)
	b.Ack(2)
	if err := b.flush(); err != nil { // as the background does within Fsync
		t.Fatal(err)
	}
	appendN(t, b, 5, 3)
	crash(b)
	c, _ := open(t, Options{Dir: dir})
	if got := readAll(t, c); len(got) != 6 || got[0].Seq != 3 {
		t.Fatalf("after a crash: %s", payloads(got))
	}
}

func TestTornRecordTruncated(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir})
	appendN(t, b, 0, 3)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	whole, _ := os.ReadFile(segs[0])
	frame, _ := appendFrame(nil, &Record{Seq: 4, Time: time.Now(), Message: msg(3)})
	for _, tail := range [][]byte{frame[:3], frame[:len(frame)-1], append(bytes.Clone(frame[:len(frame)-1]), frame[len(frame)-1]^1)} {
		if err := os.WriteFile(segs[0], append(bytes.Clone(whole), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		b, logs := open(t, Options{Dir: dir})
		if got := readAll(t, b); payloads(got) != `{"n":0} {"n":1} {"n":2}` {
			t.Fatalf("tail of %d bytes: %s", len(tail), payloads(got))
		}
		if !strings.Contains(logs.String(), "torn record cut off") {
			t.Errorf("no log line for the torn record:\n%s", logs)
		}
		if st, _ := os.Stat(segs[0]); st.Size() != int64(len(whole)) {
			t.Errorf("segment is %d bytes, want cut to %d", st.Size(), len(whole))
		}
		if seq, err := b.Append(msg(3)); err != nil || seq != 4 {
			t.Fatalf("append after the cut: %d, %v", seq, err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ = open(t, Options{Dir: dir})
		if got := readAll(t, b); len(got) != 4 {
			t.Fatalf("after appending past the cut: %s", payloads(got))
		}
		b.Close()
		if err := os.WriteFile(segs[0], whole, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBoundsDropOldest(t *testing.T) {
	size := frameSize(&Message{Topic: msg(0).Topic, Payload: msg(0).Payload}) // {"n":0}..{"n":9}: the same size
	b, logs := open(t, Options{Dir: t.TempDir(), MaxBytes: 5 * size, Fsync: 10 * time.Millisecond})
	for i := range 10 {
		appendN(t, b, i, 1)
		time.Sleep(15 * time.Millisecond) // flushes in between: the warning must still come once
	}
	st := b.Stats()
	if st.Pending != 5 || st.Bytes != 5*size || st.DroppedFull != 5 || st.DroppedAge != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := readAll(t, b); payloads(got) != `{"n":5} {"n":6} {"n":7} {"n":8} {"n":9}` {
		t.Fatalf("kept %s, want the newest five", payloads(got))
	}
	// The flusher logs the drops; give it time (a loaded machine) to run.
	poll.Until(5*time.Second, func() bool { return strings.Contains(logs.String(), "oldest undelivered messages dropped") })
	time.Sleep(30 * time.Millisecond) // more flushes: still one warning
	if n := strings.Count(logs.String(), "oldest undelivered messages dropped"); n != 1 {
		t.Errorf("%d drop warnings, want 1 (rate-limited):\n%s", n, logs)
	}
	if _, err := b.Append(Message{Topic: "big", Payload: make([]byte, 5*size)}); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("a message over the bound: %v", err)
	}
}

func TestMaxAgeDropsOld(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: clock})
	appendN(t, b, 0, 3)
	mu.Lock()
	now = now.Add(30 * time.Minute)
	mu.Unlock()
	appendN(t, b, 3, 2)
	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	if got := readAll(t, b); payloads(got) != `{"n":3} {"n":4}` {
		t.Fatalf("kept %s", payloads(got))
	}
	if st := b.Stats(); st.DroppedAge != 3 || st.DroppedFull != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSegmentsRemoved: delivered segments leave the disk; the files stay
// within MaxBytes plus one segment.
func TestSegmentsRemoved(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir, MaxBytes: 1 << 20})
	payload := make([]byte, 4000)
	for range 200 {
		if _, err := b.Append(Message{Topic: "t", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(segs) < 4 {
		t.Fatalf("%d segments for 800 kB", len(segs))
	}
	b.Ack(150)
	left, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(left) >= len(segs) {
		t.Fatalf("%d segments before, %d after acknowledging 150 of 200", len(segs), len(left))
	}
	b.Ack(200)
	if left, _ = filepath.Glob(filepath.Join(dir, "*"+segSuffix)); len(left) != 1 {
		t.Fatalf("%d segments left with nothing pending", len(left))
	}
}

// TestFsyncPolicy: with Fsync 0 a record is synced before Append returns;
// with an interval it is synced within it, not at once.
func TestFsyncPolicy(t *testing.T) {
	b, _ := open(t, Options{Dir: t.TempDir()})
	appendN(t, b, 0, 1)
	b.mu.Lock()
	dirty := b.dirty || b.dirDirty
	b.mu.Unlock()
	if dirty {
		t.Fatal("Fsync 0: Append returned before the fsync")
	}
	// The flusher's ticker starts inside Open, so its first fsync comes at
	// least 200ms after opened, however late the Append runs.
	opened := time.Now()
	b, _ = open(t, Options{Dir: t.TempDir(), Fsync: 200 * time.Millisecond})
	appendN(t, b, 0, 1)
	if !poll.Until(5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return !b.dirty && !b.dirDirty
	}) {
		t.Fatal("Fsync 200ms: not synced after 5s")
	}
	if took := time.Since(opened); took < 200*time.Millisecond {
		t.Errorf("synced %v after opening: the interval policy synced at once", took)
	}
}

func TestReadWaitsAndWaitEmpty(t *testing.T) {
	b, _ := open(t, Options{Dir: t.TempDir()})
	got := make(chan Record, 1)
	go func() {
		r, _ := b.Read(context.Background(), 0)
		got <- r
	}()
	time.Sleep(20 * time.Millisecond)
	appendN(t, b, 0, 1)
	select {
	case r := <-got:
		if r.Seq != 1 {
			t.Fatalf("read %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not wake on Append")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.WaitEmpty(ctx); err == nil {
		t.Fatal("WaitEmpty returned with a record pending")
	}
	go b.Ack(1)
	if err := b.WaitEmpty(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	good, _ := appendFrame(nil, &Record{Seq: 7, Time: time.Unix(1, 2), Message: Message{Topic: "a/b", Payload: []byte("{}"), QoS: 1, Retained: true}})
	f.Add(good)
	f.Add(good[:5])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := frameLen(data)
		if err != nil || n > len(data) {
			return
		}
		r, err := decodeFrame(data[:n])
		if err != nil {
			return
		}
		again, err := appendFrame(nil, &r)
		if err != nil || !bytes.Equal(again, data[:n]) {
			t.Fatalf("decoded %+v re-encodes as %x, not %x (%v)", r, again, data[:n], err)
		}
	})
}

// FuzzOpenSegment: whatever a segment file holds, Open keeps a valid prefix
// and a later Append and Open work.
func FuzzOpenSegment(f *testing.F) {
	var good []byte
	for i := range 3 {
		good, _ = appendFrame(good, &Record{Seq: uint64(i + 1), Time: time.Unix(0, 0), Message: msg(i)})
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add(append(bytes.Clone(good), 0xff, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 1, segSuffix)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		n := b.Stats().Pending
		if len(data) >= len(good) && bytes.Equal(data[:len(good)], good) && n < 3 {
			t.Fatalf("lost valid records: %d pending", n)
		}
		if _, err := b.Append(msg(9)); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b, err = Open(Options{Dir: dir, MaxBytes: 1 << 20}); err != nil || b.Stats().Pending != n+1 {
			t.Fatalf("reopen: %v, want %d pending", err, n+1)
		}
		b.Close()
	})
}

// TestOneProcessAtATime: a second Open of a folder in use fails (flock), and
// works once the first is closed.
func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir})
	if _, err := Open(Options{Dir: dir, MaxBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: %v", err)
	}
	b.Close()
	c, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestCorruptRecordSkipped: four bad bytes in the middle of the pending
// records lose that record only: Open skips to the next good frame, counts
// the loss and keeps every record after it; a torn tail is still cut.
func TestCorruptRecordSkipped(t *testing.T) {
	dir := t.TempDir()
	b, _ := open(t, Options{Dir: dir})
	appendN(t, b, 0, 300)
	b.Ack(10) // records 1..10 delivered
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Record 40 (seq 40, payload {"n":39}): overwrite 4 bytes of its body.
	at := bytes.Index(data, []byte(`{"n":39}`))
	copy(data[at:], "XXXX")
	data = append(data, data[:30]...) // and a torn tail
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	b, logs := open(t, Options{Dir: dir})
	defer b.Close()
	got := readAll(t, b)
	if len(got) != 289 || got[0].Seq != 11 || got[len(got)-1].Seq != 300 || strings.Contains(payloads(got), `{"n":39}`) ||
		!strings.Contains(payloads(got), `{"n":38} {"n":40}`) {
		t.Fatalf("%d records (%d..%d); want 289: 11..300 without seq 40", len(got), got[0].Seq, got[len(got)-1].Seq)
	}
	if st := b.Stats(); st.Corrupt != 1 {
		t.Errorf("stats %+v, want 1 corrupt", st)
	}
	for _, want := range []string{"corrupt records skipped", "records_lost=1", "torn record cut off"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// tmpfs mounts a small tmpfs on a new folder for the test (as root).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs for the full-disk case (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	return dir
}

// TestDiskFull: with the broker away, the outbox fills a 256 KiB disk, then
// makes room for each new message by dropping the oldest (counted); once
// they are delivered, their segments, the one taking appends too, are
// removed for new ones; when nothing at all fits, Append says ErrDiskFull,
// and it stores again as soon as there is room.
func TestDiskFull(t *testing.T) {
	disk := tmpfs(t, "256k")
	b, logs := open(t, Options{Dir: filepath.Join(disk, "outbox"), MaxBytes: 64 << 20})
	defer b.Close()
	big := Message{Topic: "cam/verdict", Payload: bytes.Repeat([]byte("v"), 1000), QoS: 1}
	var last uint64
	for range 600 { // 600 kB into 256 kB
		seq, err := b.Append(big)
		if err != nil {
			t.Fatalf("append on a full disk: %v", err)
		}
		last = seq
	}
	st := b.Stats()
	if st.DroppedDiskFull == 0 || st.Pending == 0 || st.Pending > 260 || st.Failing {
		t.Fatalf("stats %+v: want the oldest dropped for room and the newest kept", st)
	}
	got := readAll(t, b)
	if got[len(got)-1].Seq != last {
		t.Errorf("newest kept %d, want %d", got[len(got)-1].Seq, last)
	}
	b.Ack(last) // the broker is back and took them
	dropped := b.Stats().DroppedDiskFull
	for range 300 {
		if _, err := b.Append(big); err != nil {
			t.Fatalf("append after delivery: %v", err)
		}
	}
	if st := b.Stats(); st.DroppedDiskFull != dropped+uint64(300-st.Pending) || st.Pending < 200 {
		t.Errorf("stats %+v after delivery: want delivered segments removed before any record is dropped", st)
	}
	b.Ack(b.Stats().Next - 1)
	// Something else fills the disk: a message that cannot fit even in an
	// empty outbox is refused, and the outbox stores again once there is room.
	filler := filepath.Join(disk, "filler")
	f, _ := os.Create(filler)
	_, _ = f.Write(make([]byte, 512<<10)) // until the disk is full
	f.Close()
	huge := Message{Topic: "cam/snapshot", Payload: bytes.Repeat([]byte("s"), 300<<10), QoS: 1}
	if _, err := b.Append(huge); !errors.Is(err, ErrDiskFull) || !b.Stats().Failing {
		t.Fatalf("append with no room at all: %v, failing %v", err, b.Stats().Failing)
	}
	if segs, _ := filepath.Glob(filepath.Join(disk, "outbox", "*"+segSuffix)); len(segs) != 0 {
		t.Errorf("segments left while nothing fits: %v", segs)
	}
	os.Remove(filler)
	if _, err := b.Append(big); err != nil || b.Stats().Failing {
		t.Fatalf("append once there is room: %v", err)
	}
	if strings.Contains(logs.String(), "level=ERROR") && !strings.Contains(logs.String(), "flush") {
		t.Errorf("unexpected errors:\n%s", logs)
	}
}

// TestFilesRemovedWhileRunning: a segment deleted or replaced under the open
// outbox, or the whole folder removed, is noticed at the next flush and
// written back from the open file: no undelivered record is lost at the
// restart, and the folder stays locked to this process. The flush is called
// here (the background one is an hour away) so the damage is done before it.
func TestFilesRemovedWhileRunning(t *testing.T) {
	payload := make([]byte, 3000)
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, dir string, segs []string)
		rewrote int
	}{
		{"segment deleted", func(t *testing.T, _ string, segs []string) {
			if err := os.Remove(segs[0]); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"segment replaced", func(t *testing.T, _ string, segs []string) {
			if err := os.WriteFile(segs[1]+".new", []byte("not a segment"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(segs[1]+".new", segs[1]); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"folder removed", func(t *testing.T, dir string, segs []string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}, -1}, // every segment
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "outbox")
			b, logs := open(t, Options{Dir: dir, MaxBytes: 1 << 20, Fsync: time.Hour})
			for i := range 150 {
				if _, err := b.Append(Message{Topic: fmt.Sprintf("t/%d", i), Payload: payload}); err != nil {
					t.Fatal(err)
				}
			}
			b.Ack(20)
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
			if len(segs) < 3 {
				t.Fatalf("%d segments for 450 kB; want several", len(segs))
			}
			want := uint64(tc.rewrote)
			if tc.rewrote < 0 {
				want = uint64(len(segs))
			}
			if err := b.flush(); err != nil || b.Stats().Recreated != 0 {
				t.Fatalf("flush before any damage: %v, recreated %d", err, b.Stats().Recreated)
			}
			tc.damage(t, dir, segs)
			if err := b.flush(); err != nil {
				t.Fatal(err)
			}
			if n := b.Stats().Recreated; n != want {
				t.Fatalf("recreated %d segments, want %d\n%s", n, want, logs)
			}
			if !strings.Contains(logs.String(), "written back from the open file") {
				t.Errorf("log does not say so:\n%s", logs)
			}
			if _, err := Open(Options{Dir: dir, MaxBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
				t.Fatalf("a second Open after the damage: %v; want the folder still locked", err)
			}
			if _, err := b.Append(Message{Topic: "t/150", Payload: payload}); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ = open(t, Options{Dir: dir, MaxBytes: 1 << 20})
			got := readAll(t, b)
			if len(got) != 131 || got[0].Seq != 21 || got[len(got)-1].Seq != 151 {
				t.Fatalf("after restart: %d records (seq %d..); want 131: 21..151", len(got), got[0].Seq)
			}
			for _, r := range got {
				if r.Topic != fmt.Sprintf("t/%d", r.Seq-1) {
					t.Fatalf("seq %d has topic %s", r.Seq, r.Topic)
				}
			}
			if st := b.Stats(); st.Corrupt != 0 {
				t.Errorf("stats after restart %+v; want nothing corrupt", st)
			}
		})
	}
}

// TestFlushErrorsRateLimited: on a full disk every flush fails to save the
// acknowledged position; the log says so once, not at every flush.
func TestFlushErrorsRateLimited(t *testing.T) {
	disk := tmpfs(t, "64k")
	b, logs := open(t, Options{Dir: filepath.Join(disk, "outbox"), Fsync: 5 * time.Millisecond})
	defer b.Close()
	appendN(t, b, 0, 100)
	f, _ := os.Create(filepath.Join(disk, "filler"))
	_, _ = f.Write(make([]byte, 128<<10)) // until the disk is full
	f.Close()
	acked := uint64(0)
	ackMore := func() { acked++; b.Ack(acked) } // the position moves: each flush tries to save it
	if !poll.Until(10*time.Second, func() bool { ackMore(); return strings.Contains(logs.String(), "outbox: flush") }) {
		t.Fatalf("no flush error logged on a full disk:\n%s", logs)
	}
	for range 20 { // a window of many failing flushes, on purpose
		ackMore()
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "outbox: flush"); n != 1 {
		t.Errorf("%d flush errors logged within a minute; want 1:\n%s", n, logs)
	}
}
