package main

import (
	"os"
	"testing"

	"github.com/shopfaas/shop/dev/stackfile"
)

// The registry must list exactly the functions of stack.yml and of the
// bundled stack.ce.yml: regenerate it with `go generate ./cmd/shop-functions`
// after changing either.
func TestRegistryMatchesStack(t *testing.T) {
	want, err := stackfile.RegistryFrom("../../stack.yml", "../../stack.ce.yml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("registry_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("registry_gen.go is stale: run `go generate ./cmd/shop-functions`")
	}
}
