package deploycheck

import (
	"regexp"
	"strings"
	"testing"
)

// make fuzz runs "every fuzz test" (Makefile): each Fuzz function of the
// module has its line there, with its own package. FuzzVerify and FuzzParse
// had none.
func TestMakeFuzzRunsEveryFuzzTest(t *testing.T) {
	makefile := string(read(t, "Makefile"))
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	found := 0
	for _, f := range testFiles(t) {
		for _, m := range decl.FindAllStringSubmatch(string(f.src), -1) {
			found++
			line := "-fuzz '^" + m[1] + "$$' -fuzztime $(FUZZTIME) " + f.dir + "\n"
			if !strings.Contains(makefile, line) {
				t.Errorf("%s (%s) is not in make fuzz: add `$(GO) test -run '^$$' %s`", m[1], f.dir, strings.TrimSpace(line))
			}
		}
	}
	if found < 5 {
		t.Fatalf("found %d fuzz tests; the walk is broken", found)
	}
}
