// Package authtest holds the internal credentials of a test binary: one
// fresh credential per internal caller of routes.Table, and the verifier
// (the internal-callers secret) that knows them all. Only tests import it.
package authtest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// Stranger is a caller name no function accepts, with a credential the
// verifier knows: a valid credential of the wrong caller everywhere.
const Stranger = "stranger"

var set = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for _, c := range append(routes.AllCallers(), Stranger) {
		cred, err := auth.NewCredential(c)
		if err != nil {
			panic(err) // no randomness: no test can run
		}
		out[c] = cred
	}
	return out
})

// Credential is caller's credential, known to Verifier. It panics for a
// caller routes.Table does not name (a typo in a test).
func Credential(caller string) string {
	c, ok := set()[caller]
	if !ok {
		panic(fmt.Sprintf("authtest: no internal caller %q in routes.Table", caller))
	}
	return c
}

// Callers are every caller with a credential (routes.AllCallers and
// Stranger).
func Callers() []string { return append(routes.AllCallers(), Stranger) }

// VerifierText is the internal-callers secret of every credential.
func VerifierText() string {
	var b strings.Builder
	for _, c := range Callers() {
		line, err := auth.VerifierLine(Credential(c))
		if err != nil {
			panic(err)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// Verifier knows every credential of Credential.
func Verifier() *auth.InternalVerifier {
	v, err := auth.ParseInternalVerifier(VerifierText())
	if err != nil {
		panic(err)
	}
	return v
}
