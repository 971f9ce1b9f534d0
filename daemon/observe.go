package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/deepfaked/deepfaked/daemon/health"
	"github.com/deepfaked/deepfaked/daemon/metrics"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
	"github.com/deepfaked/deepfaked/setup"
)

// observe makes the health monitor and, with metrics.listen, the metrics
// (observing the pipeline) and their server, and with web.enabled the page;
// call it once the pipeline exists. tap is the pipeline's publisher when
// the page is on.
func (d *Daemon) observe(start time.Time, webOpts web.Options, tap *publishTap) error {
	cams := make([]health.Camera, len(d.cams))
	for i, c := range d.cams {
		cams[i] = c.src
	}
	src := health.Sources{Cameras: cams, Pipeline: d.pipe, Publisher: d.pub, Outbox: d.box,
		Models: d.clf, Stall: setup.WatchdogStall(d.cfg), Start: start,
		Version: buildinfo.Version(), Release: setup.ModelRelease(d.cfg, d.clf.BackboneID())}
	if d.broker != nil { // a nil *Broker in the interface would not be nil
		src.Broker = d.broker
	}
	if d.hook != nil {
		src.Webhook = d.hook
	}
	d.mon = health.New(src)
	var open map[string]http.Handler
	if addr := setup.MetricsListen(d.cfg); addr != "" {
		m := metrics.New(d.mon, setup.MetricsLabels(d.cfg))
		d.pipe.Observe(m)
		h := m.Handler(d.mon)
		if setup.WebShared(d.cfg) {
			// One server where the issue asks for one (web.listen equal to
			// metrics.listen): one port to open and one TLS set-up. The
			// three paths stay without a login: scrapers and health checks
			// do not log in. Apart by default: metrics have no login, so
			// they stay on their own (firewalled) port unless asked.
			open = map[string]http.Handler{"/metrics": h, "/healthz": h, "/readyz": h}
		} else {
			var err error
			if d.metrics, err = metrics.Listen(addr, h, d.log); err != nil {
				return err
			}
			d.log.Info("serving /metrics, /healthz and /readyz", "addr", d.metrics.Addr())
		}
	}
	if webOpts.Listen == "" {
		return nil
	}
	return d.startWeb(webOpts, tap, open)
}

// MetricsAddr is where /metrics, /healthz and /readyz are served (the real
// port when metrics.listen asks for 0), or "" when they are not.
func (d *Daemon) MetricsAddr() string {
	if d.metrics == nil {
		if setup.WebShared(d.cfg) {
			return d.WebAddr()
		}
		return ""
	}
	return d.metrics.Addr()
}

// reporter publishes cameras' availability and the stats topic (Run);
// once the pipeline has returned, its Availability publishes the cameras'
// last one (offline: they have ended).
func (d *Daemon) reporter() *health.Reporter {
	return health.NewReporter(d.mon, d.pub, d.cfg.MQTT.TopicPrefix, setup.StatsInterval(d.cfg), d.log)
}

// closeMetrics stops the metrics server, first, so that no scrape reads
// parts being closed.
func (d *Daemon) closeMetrics() error {
	if d.metrics == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.metrics.Close(ctx)
}
