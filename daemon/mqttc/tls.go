package mqttc

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadTLS builds the client TLS configuration: ca ("" for the system roots)
// verifies the broker, cert and key (both or neither) identify the client.
// insecureSkipVerify turns off broker verification, for test set-ups only.
func LoadTLS(ca, cert, key string, insecureSkipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: insecureSkipVerify, //nolint:gosec // the operator asked for it explicitly
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls: CA file %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	switch {
	case cert == "" && key == "":
	case cert == "":
		return nil, fmt.Errorf("mqtt tls: key file %s given without a certificate file", key)
	case key == "":
		return nil, fmt.Errorf("mqtt tls: certificate file %s given without a key file", cert)
	default:
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: certificate %s with key %s: %w", cert, key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
