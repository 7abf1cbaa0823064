package redisconntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/redisconn"
)

// TLSServerName is the only name TLSServer's certificate is valid for: a
// client that dials 127.0.0.1 instead (the same server) fails the
// certificate's name check.
const TLSServerName = "localhost"

// TLSServer is Server over TLS only, as a managed Redis that requires TLS:
// redis-server with --port 0 (no plain TCP) and --tls-port on a free
// loopback port, presenting a certificate for TLSServerName issued by a CA
// made for this test (--tls-auth-clients no: clients present none). It
// returns the address to dial, TLSServerName:port, and the CA's PEM
// certificate, the content of a redis-ca secret that trusts the server.
// The keys and certificates are generated in the test and written to its
// temporary directory only. The password is as Server's.
func TLSServer(tb testing.TB, password string, args ...string) (addr string, caPEM []byte) {
	tb.Helper()
	ca, caKey, caPEM := newCA(tb)
	certPEM, keyPEM := issue(tb, ca, caKey, TLSServerName)
	dir := tb.TempDir()
	files := map[string][]byte{"ca.crt": caPEM, "redis.crt": certPEM, "redis.key": keyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(freeAddr(tb))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	addr = net.JoinHostPort(TLSServerName, port)
	start(tb, password, []string{"--port", "0", "--tls-port", port,
		"--tls-cert-file", filepath.Join(dir, "redis.crt"), "--tls-key-file", filepath.Join(dir, "redis.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"), "--tls-auth-clients", "no"},
		&redis.Options{Addr: addr, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: TLSServerName, RootCAs: roots}},
		args)
	return addr, caPEM
}

// CA returns the PEM certificate of a new CA that issued no server's
// certificate: a redis-ca secret holding it trusts the wrong authority.
func CA(tb testing.TB) []byte {
	tb.Helper()
	_, _, caPEM := newCA(tb)
	return caPEM
}

// FromTLSSecrets is FromSecret for a Redis that requires TLS: REDIS_TLS is
// true and the secrets directory holds ca as the redis-ca file (no file
// when ca is nil or empty: the system's roots).
func FromTLSSecrets[T any](tb testing.TB, addr, secret string, ca []byte, read func(*config.Reader) T) T {
	tb.Helper()
	return fromSecrets(tb, map[string]string{"REDIS_ADDR": addr, redisconn.TLSEnv: "true"},
		map[string][]byte{redisconn.PasswordSecret: []byte(secret), redisconn.CASecret: ca}, read)
}

// newCA returns a self-signed CA certificate valid for an hour, its key and
// its PEM.
func newCA(tb testing.TB) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(tb), Subject: pkix.Name{CommonName: "redisconntest CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// issue returns a server certificate for name (a DNS name only, no IP
// address) signed by ca, and its key, both PEM.
func issue(tb testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(tb), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
