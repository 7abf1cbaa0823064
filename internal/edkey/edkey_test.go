package edkey_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/edkey"
)

func TestNewKeysParseBack(t *testing.T) {
	priv, pub, err := edkey.New()
	if err != nil {
		t.Fatal(err)
	}
	k, err := edkey.ParsePrivate("k", priv)
	if err != nil {
		t.Fatal(err)
	}
	_, pub2, _ := edkey.New()
	keys, err := edkey.ParsePublic("k", pub+pub2) // two keys while one is rotated
	if err != nil || len(keys) != 2 || !keys[0].Equal(k.Public()) || edkey.PublicPEM(keys[0]) != pub {
		t.Fatalf("public keys %v, %v", keys, err)
	}
}

func TestParseRefuses(t *testing.T) {
	priv, pub, _ := edkey.New()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPriv := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	ecPub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER}))
	for name, text := range map[string]string{
		"empty": "", "public key": pub, "two private keys": priv + priv, "trailing text": priv + "x",
		"P-256 key": ecPriv, "not PEM": "MC4CAQAwBQYDK2VwBCIEI",
	} {
		if _, err := edkey.ParsePrivate("the key", text); err == nil || !strings.HasPrefix(err.Error(), "the key: ") {
			t.Errorf("private %s: %v", name, err)
		} else if strings.Contains(err.Error(), strings.TrimSpace(priv)) {
			t.Errorf("private %s: the error holds the key", name)
		}
	}
	for name, text := range map[string]string{
		"empty": "", "private key": priv, "a private key among public ones": pub + priv, "trailing text": pub + "x",
		"P-256 key": ecPub,
	} {
		if _, err := edkey.ParsePublic("the key", text); err == nil || !strings.HasPrefix(err.Error(), "the key: ") {
			t.Errorf("public %s: %v", name, err)
		}
	}
}
