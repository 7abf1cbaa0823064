// Package stackfile reads stack.yml the way faas-cli does (go-sdk's parser,
// with ${VAR:-default} substitution) and resolves each function's
// environment_file entries (refusing a key also set in its environment, whose
// precedence in faas-cli surprises).
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

// Environment returns fn's environment: its environment_file entries (in
// order, a later file winning) and its environment map. faas-cli merges the
// files OVER the map (commands/deploy.go's compileEnvironment calls
// MergeMap(yamlEnvironment, fileEnvironment), the overlay winning), the
// reverse of what a reader of the stack file expects, so a key present in
// both is refused rather than resolved either way. faas-cli opens the files
// relative to its current directory; here they are relative to stackDir,
// which is the same when faas-cli runs where stack.yml is, as the guides do.
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
	var both []string
	for k := range fn.Environment {
		if _, ok := env[k]; ok {
			both = append(both, k)
		}
	}
	if len(both) > 0 {
		slices.Sort(both)
		return nil, fmt.Errorf("%v set both in environment and in environment_file %v: faas-cli would take the file's value; set each in one place", both, fn.EnvironmentFile)
	}
	maps.Copy(env, fn.Environment)
	return env, nil
}
