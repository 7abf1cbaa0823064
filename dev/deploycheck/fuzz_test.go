package deploycheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// make fuzz runs "every fuzz test" (Makefile): each Fuzz function of the
// module has its line there, with its own package. FuzzVerify and FuzzParse
// had none.
func TestMakeFuzzRunsEveryFuzzTest(t *testing.T) {
	r := root(t)
	makefile := string(read(t, "Makefile"))
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	found := 0
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(r, filepath.Dir(path))
		if err != nil {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			found++
			line := "-fuzz '^" + m[1] + "$$' -fuzztime $(FUZZTIME) ./" + filepath.ToSlash(rel) + "\n"
			if !strings.Contains(makefile, line) {
				t.Errorf("%s (./%s) is not in make fuzz: add `$(GO) test -run '^$$' %s`", m[1], rel, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 5 {
		t.Fatalf("found %d fuzz tests; the walk is broken", found)
	}
}
