package stackfile

import (
	"fmt"
	"os"

	"github.com/drone/envsubst"
	"github.com/openfaas/go-sdk/stack"
)

// LoadEnv parses the stack file at path like Load, but substitutes
// ${VAR:-default} from getenv instead of the process environment, so a caller
// (the local runtime, tests) can pick SHOP_ENV without mutating os.Environ.
func LoadEnv(path string, getenv func(string) string) (*stack.Services, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	data, err := envsubst.Eval(string(raw), getenv)
	if err != nil {
		return nil, fmt.Errorf("substitute %s: %w", path, err)
	}
	s, err := stack.ParseYAMLData([]byte(data), "", "", false)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, nil
}
