// Package stackfile reads stack.yml the way faas-cli does (go-sdk's parser,
// with ${VAR:-default} substitution) and resolves each function's
// environment_file entries.
package stackfile

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/openfaas/go-sdk/stack"
	"gopkg.in/yaml.v3"
)

// Module is the project's Go module path.
const Module = "github.com/shopfaas/shop"

// Load parses the stack file at path.
func Load(path string) (*stack.Services, error) {
	s, err := stack.ParseYAMLFile(path, "", "", true)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, nil
}

// Names returns the stack's function names, sorted.
func Names(s *stack.Services) []string {
	return slices.Sorted(maps.Keys(s.Functions))
}

// Environment merges fn's environment_file entries (relative to the stack
// file's directory, in order) and then its environment map, as faas-cli does.
func Environment(stackDir string, fn stack.Function) (map[string]string, error) {
	env := map[string]string{}
	for _, f := range fn.EnvironmentFile {
		b, err := os.ReadFile(filepath.Join(stackDir, f))
		if err != nil {
			return nil, fmt.Errorf("environment_file: %w", err)
		}
		var doc struct {
			Environment map[string]string `yaml:"environment"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("environment_file %s: %w", f, err)
		}
		maps.Copy(env, doc.Environment)
	}
	maps.Copy(env, fn.Environment)
	return env, nil
}
