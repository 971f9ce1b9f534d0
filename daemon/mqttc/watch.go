package mqttc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// DaemonWatch is a subscription of its own to what a daemon publishes
// (`deepfaked run --watch`, bench).
type DaemonWatch struct {
	status  string
	cancel  context.CancelFunc
	done    chan error
	offline chan struct{} // closed when the daemon's offline has arrived
}

// offlineTimeout bounds the wait for the daemon's offline once it has stopped.
const offlineTimeout = 10 * time.Second

// WatchDaemon subscribes to filter (which must cover o.StatusTopic) with a
// client of its own on the daemon's broker and hands each message to handle.
// It returns once subscribed, so it misses nothing the daemon's Run publishes.
func WatchDaemon(ctx context.Context, o Options, filter string, handle func(topic string, payload []byte)) (*DaemonWatch, error) {
	status := o.StatusTopic
	o.ClientID, o.StatusTopic, o.Subscriptions = "", "", nil
	w := &DaemonWatch{status: status, done: make(chan error, 1), offline: make(chan struct{})}
	ready := make(chan struct{})
	var subscribed, offline sync.Once // OnSubscribed runs again after each reconnect
	o.OnSubscribed = func() { subscribed.Do(func() { close(ready) }) }
	// The daemon's offline counts only after its online (retained, so it
	// arrives on subscribing): a retained offline from an earlier run does not.
	var online atomic.Bool
	// Not ended by ctx: it outlives the daemon's Run, to see the final offline.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	go func() {
		w.done <- Subscribe(sctx, o, []string{filter}, func(topic string, payload []byte) {
			handle(topic, payload)
			if topic != status {
				return
			}
			switch string(payload) {
			case contract.Online:
				online.Store(true)
			case contract.Offline:
				if online.Load() {
					offline.Do(func() { close(w.offline) })
				}
			}
		})
	}()
	select {
	case <-ready:
		return w, nil
	case err := <-w.done:
		cancel()
		return nil, fmt.Errorf("watch %s: %w", filter, err)
	case <-time.After(o.ConnectTimeout):
		cancel()
		<-w.done
		return nil, fmt.Errorf("watch %s: not subscribed after %v", filter, o.ConnectTimeout)
	}
}

// Stop waits until the daemon's offline has arrived, so that every message
// published before it has been handled, then ends the subscription.
func (w *DaemonWatch) Stop() error {
	var err error
	select {
	case <-w.offline:
	case <-time.After(offlineTimeout):
		err = fmt.Errorf("watch: no %q on %s within %v of the daemon stopping", contract.Offline, w.status, offlineTimeout)
	}
	w.cancel()
	return errors.Join(err, <-w.done)
}
