package web

import "crypto/tls"

// Options are the page's settings from the config (setup.WebOptions);
// Listen "" means the page is off.
type Options struct {
	// Listen is host:port (web.listen).
	Listen string
	// PasswordHash is the login password's bcrypt hash; nil: no login, and
	// only loopback clients are served.
	PasswordHash []byte
	// TLS, when set, serves HTTPS; session cookies are then Secure.
	TLS *tls.Config
}
