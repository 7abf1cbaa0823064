// Package api holds the shop's public contract, api/openapi.yaml: the OpenAPI
// 3.1 document of every public route, its statuses, problem codes and
// schemas. dev/contract checks it against the route table internal/routes and
// validates the integration tests' traffic against it; the local edge serves
// it. It imports nothing of the shop.
package api

import _ "embed"

//go:embed openapi.yaml
var document []byte

// OpenAPI returns the OpenAPI document (YAML), a copy the caller may keep.
func OpenAPI() []byte { return append([]byte(nil), document...) }
