package mqttc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// stamp is what the outage tests publish: a verdict's de-duplication keys.
type stamp struct {
	Run    string `json:"run"`
	Camera string `json:"camera"`
	Seq    int64  `json:"seq"`
}

// tally is what a persistent-session subscriber received, per camera.
type tally struct {
	mu       sync.Mutex
	last     map[string]int64 // camera: highest seq seen
	seen     map[string]int   // "camera/seq": deliveries
	outOfOrd int
}

func (ta *tally) add(s stamp) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	key := fmt.Sprintf("%s/%s/%d", s.Run, s.Camera, s.Seq)
	ta.seen[key]++
	if ta.seen[key] > 1 {
		return // a duplicate (at least once): not an ordering fault
	}
	if last, ok := ta.last[s.Run+s.Camera]; ok && s.Seq != last+1 {
		ta.outOfOrd++
	}
	ta.last[s.Run+s.Camera] = s.Seq
}

// counts are (distinct delivered, duplicates, out of order) among want.
func (ta *tally) counts(want []stamp) (delivered, dups, outOfOrder int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for _, w := range want {
		if n := ta.seen[fmt.Sprintf("%s/%s/%d", w.Run, w.Camera, w.Seq)]; n > 0 {
			delivered++
			dups += n - 1
		}
	}
	return delivered, dups, ta.outOfOrd
}

// persistentSubscriber subscribes at QoS 1 with a persistent session (clean
// session off, fixed client id), as a consumer that must not miss a verdict
// does, and reconnects on its own.
func persistentSubscriber(t *testing.T, broker, filter string) *tally {
	t.Helper()
	ta := &tally{last: map[string]int64{}, seen: map[string]int{}}
	handle := func(_ mqtt.Client, m mqtt.Message) {
		var s stamp
		if err := json.Unmarshal(m.Payload(), &s); err == nil {
			ta.add(s)
		}
	}
	co := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID("persistent-sub")).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetDefaultPublishHandler(handle) // messages of the stored session before Subscribe is called again
	c := mqtt.NewClient(co)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return ta
}

// outage is how long the broker is away: 3s, or $DEEPFAKED_OUTAGE (the 20s).
func outage(t *testing.T) time.Duration {
	if s := os.Getenv("DEEPFAKED_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("DEEPFAKED_OUTAGE=%q: %v", s, err)
		}
		return d
	}
	return 3 * time.Second
}

// TestBrokerOutageLosesNothing: three cameras' verdicts stream at 120/s;
// mosquitto (persistence on) is stopped in the middle and started again on
// the same port; a persistent-session QoS 1 subscriber gets every verdict,
// in order per camera (duplicates allowed: delivery is at least once).
func TestBrokerOutageLosesNothing(t *testing.T) {
	testenv.Long(t)
	m := testenv.StartPersistentMosquitto(t, "")
	ta := persistentSubscriber(t, m.URL(), "outage/+/verdict")
	log, logs := newLog()
	p, err := Connect(context.Background(), Options{Outbox: testenv.Outbox(t), Broker: m.URL(), ClientID: clientID("daemon"), QoS: 1, KeepAlive: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	down := outage(t)
	var want []stamp
	publish := func(d time.Duration) {
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
			for _, cam := range []string{"cam0", "cam1", "cam2"} {
				s := stamp{Run: "r1", Camera: cam, Seq: int64(len(want) / 3)}
				b, _ := json.Marshal(s)
				if err := p.Publish("outage/"+cam+"/verdict", b); err != nil {
					t.Fatal(err)
				}
				want = append(want, s)
			}
		}
	}
	publish(time.Second)
	m.Terminate()
	publish(down)
	m.Start()
	publish(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	var delivered, dups, outOfOrder int
	poll.Until(30*time.Second, func() bool {
		delivered, dups, outOfOrder = ta.counts(want)
		return delivered == len(want)
	})
	t.Logf("outage %v: published %d, delivered %d, lost %d, duplicates %d, out of order %d", down, len(want), delivered, len(want)-delivered, dups, outOfOrder)
	if delivered != len(want) || outOfOrder != 0 {
		t.Fatalf("delivered %d of %d, %d out of order\n%s", delivered, len(want), outOfOrder, m.Log())
	}
}

// TestKilledDuringOutage: a publisher process is SIGKILLed while the broker
// is down, then started again on the same outbox; every message whose
// Publish had returned before the kill reaches a persistent subscriber.
func TestKilledDuringOutage(t *testing.T) {
	testenv.Long(t)
	m := testenv.StartPersistentMosquitto(t, "")
	ta := persistentSubscriber(t, m.URL(), "killed/+/verdict")
	dir := t.TempDir()
	start := func(run string, n int) (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPublisher$", "-test.v=false")
		cmd.Env = append(os.Environ(), "DEEPFAKED_HELPER_PUBLISHER="+strings.Join([]string{dir, m.URL(), run, strconv.Itoa(n)}, ","))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewScanner(out)
	}
	// published reads the helper's "published <seq>" lines until n.
	var want []stamp
	published := func(sc *bufio.Scanner, run string, n int) {
		for len(want) < n && sc.Scan() {
			if seq, ok := strings.CutPrefix(sc.Text(), "published "); ok {
				i, _ := strconv.ParseInt(seq, 10, 64)
				want = append(want, stamp{Run: run, Camera: "cam0", Seq: i})
			}
		}
	}
	first, out := start("a", 1000000)
	published(out, "a", 100) // delivered while the broker is up
	m.Terminate()
	published(out, "a", 300) // into the outbox only
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	m.Start()
	second, out := start("b", 10) // replays the first run's outbox, then drains
	published(out, "b", len(want)+10)
	if err := second.Wait(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var delivered, dups, outOfOrder int
	poll.Until(30*time.Second, func() bool {
		delivered, dups, outOfOrder = ta.counts(want)
		return delivered == len(want)
	})
	t.Logf("SIGKILL during the outage: published %d before the kill and after, delivered %d, lost %d, duplicates %d, out of order %d",
		len(want), delivered, len(want)-delivered, dups, outOfOrder)
	if delivered != len(want) || outOfOrder != 0 {
		t.Fatalf("delivered %d of %d, %d out of order\n%s", delivered, len(want), outOfOrder, m.Log())
	}
}

// TestHelperPublisher is the process TestKilledDuringOutage starts and kills:
// it publishes n stamps of run on killed/cam0/verdict through an outbox in
// dir, printing "published <seq>" after each Publish returns, then drains.
func TestHelperPublisher(t *testing.T) {
	env := os.Getenv("DEEPFAKED_HELPER_PUBLISHER")
	if env == "" {
		t.Skip("run by TestKilledDuringOutage")
	}
	args := strings.Split(env, ",")
	dir, broker, run := args[0], args[1], args[2]
	n, _ := strconv.Atoi(args[3])
	box, err := outbox.Open(outbox.Options{Dir: dir, MaxBytes: 64 << 20, Fsync: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	p, err := Connect(context.Background(), Options{Outbox: box, Broker: broker, ClientID: "helper-publisher", QoS: 1, ConnectTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b, _ := json.Marshal(stamp{Run: run, Camera: "cam0", Seq: int64(i)})
		if err := p.Publish("killed/cam0/verdict", b); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("published %d\n", i)
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
