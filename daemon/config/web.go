package config

import "net/url"

// Web is the page the daemon serves (package daemon/web): status, events,
// the review queue, training and rollback. Off by default: it can label crops
// and install heads, so it is opened on purpose.
type Web struct {
	Enabled bool `yaml:"enabled"`
	// Listen is host:port. When it equals metrics.listen, one HTTP server
	// serves the page, /metrics, /healthz and /readyz.
	Listen string `yaml:"listen"`
	// PasswordFile holds the login password, or its bcrypt hash; not
	// readable by all users. Without it the page answers loopback clients only.
	PasswordFile string `yaml:"password_file"`
	// TLS, when set, serves HTTPS with this certificate and key.
	TLS WebTLS `yaml:"tls"`
	// URL is the page's address as others reach it (Home Assistant's link
	// to it); empty: made from Listen (setup.PageURL).
	URL string `yaml:"url"`
}

// WebTLS is the page's certificate and private key (PEM files).
type WebTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DefaultWebListen is web.listen: loopback, next to the metrics' usual 9464,
// so that turning the page on never exposes it by accident.
const DefaultWebListen = "127.0.0.1:9465"

func defaultWeb() Web { return Web{Listen: DefaultWebListen} }

// WebShared says whether the page shares the metrics' HTTP server.
func (c *Config) WebShared() bool {
	return c.Web.Enabled && c.Metrics.Listen != "" && c.Web.Listen == c.Metrics.Listen
}

func (w *Web) check(k checker) {
	if err := checkListen(w.Listen); err != nil {
		k.fail("web.listen", "%q: %v", w.Listen, err)
		return
	}
	if w.URL != "" {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.fail("web.url", "%q: want an http:// or https:// address with a host", w.URL)
		}
	}
	if (w.TLS.Cert == "") != (w.TLS.Key == "") {
		if w.TLS.Cert == "" {
			k.fail("web.tls.cert", "required when web.tls.key is set")
		} else {
			k.fail("web.tls.key", "required when web.tls.cert is set")
		}
	}
	// Whoever reaches the page can label crops and install heads: off
	// loopback it needs a login.
	if w.Enabled && w.PasswordFile == "" && !isLoopback(w.Listen) {
		k.fail("web.listen", "%s is not a loopback address, so the page needs a login: set web.password_file", w.Listen)
	}
}
