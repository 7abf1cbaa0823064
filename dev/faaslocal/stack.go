package faaslocal

import (
	"fmt"
	"path/filepath"

	"github.com/openfaas/faas-provider/types"

	"github.com/shopfaas/shop/dev/stackfile"
)

// loadStack reads the stack file (SHOP_ENV is always development) and
// returns the deployments faas-cli would send for the named functions.
func loadStack(path string, getenv func(string) string, names []string) ([]types.FunctionDeployment, error) {
	s, err := stackfile.LoadEnv(path, func(k string) string {
		if k == "SHOP_ENV" {
			return "development"
		}
		return getenv(k)
	})
	if err != nil {
		return nil, err
	}
	out := make([]types.FunctionDeployment, 0, len(names))
	for _, name := range names {
		fn, ok := s.Functions[name]
		if !ok {
			return nil, fmt.Errorf("function %q is not in %s", name, path)
		}
		env, err := stackfile.Environment(filepath.Dir(path), fn)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		spec := types.FunctionDeployment{Service: name, Image: fn.Image, EnvProcess: fn.FProcess,
			EnvVars: env, Secrets: fn.Secrets, Labels: fn.Labels, Annotations: fn.Annotations}
		if fn.Limits != nil {
			spec.Limits = &types.FunctionResources{Memory: fn.Limits.Memory, CPU: fn.Limits.CPU}
		}
		if fn.Requests != nil {
			spec.Requests = &types.FunctionResources{Memory: fn.Requests.Memory, CPU: fn.Requests.CPU}
		}
		out = append(out, spec)
	}
	return out, nil
}
