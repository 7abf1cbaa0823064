package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"

	"github.com/shopfaas/shop/internal/config"
)

// TLSEnv names the variable that turns TLS to Redis on: "true" for a Redis
// that accepts only TLS (a managed one: ElastiCache with in-transit
// encryption, Azure Cache for Redis, Redis Cloud). Unset or "false", the
// clients dial plain TCP, as to docker-compose.yml's Redis on faasd's
// private network.
const TLSEnv = "REDIS_TLS"

// CASecret is the optional secret file holding the PEM certificates of the
// authorities that Redis's certificate must chain to, for a Redis whose
// certificate the system's roots do not trust (Redis Cloud's own CA, a
// private CA). Absent, the system's roots are used (the function image's
// ca-certificates). Certificates are not secret; it is a secret file only
// because secret files are what OpenFaaS mounts into a function.
const CASecret = "redis-ca"

// tlsFrom reads REDIS_TLS and the optional redis-ca secret into cfg; c
// collects the problems: REDIS_TLS not a boolean, a redis-ca that cannot be
// read, holds anything but certificates or none at all, or is given while
// REDIS_TLS is not true (a deployment that meant TLS and would have dialled
// plain TCP).
func tlsFrom(c *config.Reader, cfg *Config) {
	cfg.TLS = c.Bool(TLSEnv, false)
	ca := c.OptionalSecret(CASecret)
	if ca == "" {
		return
	}
	if !cfg.TLS {
		c.Fail(CASecret, fmt.Errorf("the secret is present but %s is not true: set %s=true, or remove the secret", TLSEnv, TLSEnv))
		return
	}
	if _, err := parseCA([]byte(ca)); err != nil {
		c.Fail("secret "+CASecret, err)
		return
	}
	cfg.CA = []byte(ca)
}

// parseCA returns the pool of the certificates in pemBytes: at least one,
// and nothing but certificates (a private key pasted into the file by
// mistake is refused rather than ignored).
func parseCA(pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block of type %q, want only CERTIFICATE blocks", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// tlsConfig is the TLS configuration of cfg's clients: TLS 1.2 or later,
// the server's certificate verified against cfg.CA (or the system's roots
// when there is none) for the host of cfg.Addr. There is no option to skip
// the verification.
func tlsConfig(cfg Config) *tls.Config {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host = cfg.Addr
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if cfg.CA != nil {
		pool, err := parseCA(cfg.CA)
		if err != nil {
			// ConfigFrom refused such a CA; a Config built by hand with one
			// trusts no authority: every handshake fails, none is plaintext.
			pool = x509.NewCertPool()
		}
		t.RootCAs = pool
	}
	return t
}

// TLSFailed reports whether err is Redis's certificate failing verification:
// signed by an authority that neither the redis-ca secret nor the system's
// roots hold, not valid for the host of REDIS_ADDR, or expired. Like
// AuthFailed, this does not pass by itself: it is a configuration error (or
// someone else answering at Redis's address), never a Redis that is down.
func TLSFailed(err error) bool {
	var verification *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verification) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
