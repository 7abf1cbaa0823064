package deploycheck

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// testFile is a _test.go file of the module.
type testFile struct {
	dir  string // its package's directory, "./"-relative and slash-separated as the Makefile names it
	path string
	src  []byte
}

// testFiles returns every _test.go file of the module (not under a dot
// directory, node_modules or testdata).
func testFiles(t *testing.T) []testFile {
	t.Helper()
	r := root(t)
	var files []testFile
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// build/ holds buildcheck's build contexts (git-ignored copies of
		// the packages, each a module of its own), which make test's second
		// stage writes: read, a second make test in the same tree failed.
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata" || path == filepath.Join(r, "build")) {
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
		dir := "./" + filepath.ToSlash(rel)
		if rel == "." {
			dir = "."
		}
		files = append(files, testFile{dir: dir, path: path, src: src})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// testFuncs returns the Test functions f declares, each with the
// declaration's body.
func (f testFile) testFuncs(t *testing.T) map[string]*ast.FuncDecl {
	t.Helper()
	return f.funcs(t, "Test")
}

// funcs returns the functions without a receiver f declares whose names
// start with prefix (Test, Fuzz), each with the declaration's body.
func (f testFile) funcs(t *testing.T, prefix string) map[string]*ast.FuncDecl {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), f.path, f.src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, d := range file.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, prefix) {
			funcs[fn.Name.Name] = fn
		}
	}
	return funcs
}

// makeTest is a go test command of the Makefile that names its tests.
type makeTest struct {
	line  string
	race  bool
	tags  []string
	names []string // the tests its -run pattern names; none for '^$$'
	fuzz  []string // the fuzz tests its -fuzz pattern names
	pkgs  []string // its ./ packages
}

var (
	goTest   = regexp.MustCompile(`\$\(GO\) test\s`)
	runFlag  = regexp.MustCompile(`\s-run[ =]('[^']*'|\S+)`)
	anchored = regexp.MustCompile(`^'\^(?:(\w+)|\(((?:\w+\|)*\w+)\))\$\$'$`)
	tagsFlag = regexp.MustCompile(`\s-tags[ =](\S+)`)
	fuzzFlag = regexp.MustCompile(`\s-fuzz[ =]('[^']*'|\S+)`)
)

// makeTests returns the go test commands of the Makefile with a -run
// pattern. A pattern that is not anchored and made of names only (-run
// '^Name$$' or -run '^(A|B)$$', or -run '^$$' for none) fails the test: go
// test matches an unanchored pattern anywhere in a name.
func makeTests(t *testing.T) []makeTest {
	t.Helper()
	makefile := strings.ReplaceAll(string(read(t, "Makefile")), "\\\n", " ")
	var tests []makeTest
	for line := range strings.SplitSeq(makefile, "\n") {
		if !goTest.MatchString(line) {
			continue
		}
		run := runFlag.FindStringSubmatch(line)
		if run == nil {
			continue
		}
		m := anchored.FindStringSubmatch(run[1])
		if m == nil && run[1] != "'^$$'" {
			t.Errorf("Makefile: -run %s is not '^Name$$' or '^(Name|Other)$$' (go test matches an unanchored name anywhere): %s", run[1], strings.TrimSpace(line))
			continue
		}
		mt := makeTest{line: strings.TrimSpace(line), race: strings.Contains(line, " -race")}
		if m != nil {
			mt.names = strings.Split(m[1]+m[2], "|")
		}
		if tags := tagsFlag.FindStringSubmatch(line); tags != nil {
			mt.tags = strings.Split(tags[1], ",")
		}
		if fz := fuzzFlag.FindStringSubmatch(line); fz != nil {
			m := anchored.FindStringSubmatch(fz[1])
			if m == nil {
				t.Errorf("Makefile: -fuzz %s is not '^Name$$': %s", fz[1], strings.TrimSpace(line))
			} else {
				mt.fuzz = strings.Split(m[1]+m[2], "|")
			}
		}
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "./") {
				mt.pkgs = append(mt.pkgs, strings.TrimSuffix(f, "/"))
			}
		}
		tests = append(tests, mt)
	}
	if len(tests) < 10 {
		t.Fatalf("found %d go test lines with -run in the Makefile; the parse is broken", len(tests))
	}
	return tests
}

// runs reports whether the command runs the package in dir.
func (mt makeTest) runs(dir string) bool {
	for _, p := range mt.pkgs {
		if p == dir || (strings.HasSuffix(p, "/...") && (dir+"/" == strings.TrimSuffix(p, "...") || strings.HasPrefix(dir, strings.TrimSuffix(p, "...")))) {
			return true
		}
	}
	return false
}

// builds reports whether the command compiles f (its build constraints and
// file name against the command's tags and -race, on this machine).
func (mt makeTest) builds(t *testing.T, f testFile) bool {
	t.Helper()
	ctx := build.Default
	ctx.BuildTags = slices.Clone(mt.tags)
	if mt.race {
		ctx.BuildTags = append(ctx.BuildTags, "race")
	}
	ok, err := ctx.MatchFile(filepath.Dir(f.path), filepath.Base(f.path))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Every test a Makefile line names in its -run pattern is declared in a
// package the line runs, in a file the line builds: go test exits 0 when
// -run matches nothing, so a renamed test or a dropped build tag would
// silently leave a target (broker-restart-test, replacement-test, the
// allocation counts of make unit) testing nothing.
func TestMakeRunsTestsThatExist(t *testing.T) {
	files := testFiles(t)
	for _, mt := range makeTests(t) {
		for _, name := range mt.names {
			found := false
			for _, f := range files {
				if mt.runs(f.dir) && f.testFuncs(t)[name] != nil && mt.builds(t, f) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("Makefile runs %s, which no test file of %v that the line builds declares: %s", name, mt.pkgs, mt.line)
			}
		}
	}
}

// Every fuzz test a Makefile line names in its -fuzz pattern is declared in
// a package the line runs: go test -fuzz exits 0 ("no fuzz tests to fuzz")
// when the pattern matches nothing, so a renamed or moved fuzz test would
// leave make fuzz fuzzing nothing (helper-130 found it unchecked).
func TestMakeFuzzesTargetsThatExist(t *testing.T) {
	files := testFiles(t)
	n := 0
	for _, mt := range makeTests(t) {
		for _, name := range mt.fuzz {
			n++
			found := false
			for _, f := range files {
				if mt.runs(f.dir) && f.funcs(t, "Fuzz")[name] != nil && mt.builds(t, f) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("Makefile fuzzes %s, which no test file of %v that the line builds declares: %s", name, mt.pkgs, mt.line)
			}
		}
	}
	if n < 5 {
		t.Fatalf("found %d fuzz targets in the Makefile; the parse is broken", n)
	}
}

// raceOnly reports whether f's //go:build line leaves it out of a -race
// build but not out of every build without -race.
func raceOnly(t *testing.T, f testFile) bool {
	t.Helper()
	for line := range strings.SplitSeq(string(f.src), "\n") {
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if !constraint.IsGoBuild(line) {
			continue
		}
		expr, err := constraint.Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		for _, others := range []bool{true, false} {
			with := func(race bool) bool {
				return expr.Eval(func(tag string) bool {
					if tag == "race" {
						return race
					}
					return others
				})
			}
			if with(false) && !with(true) {
				return true
			}
		}
		return false
	}
	return false
}

// mentions reports whether fn's body uses the identifier name.
func mentions(fn *ast.FuncDecl, name string) bool {
	found := false
	ast.Inspect(fn, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// make unit runs every package with -race, which leaves out the tests that
// count allocations (the race detector adds its own): those of the files
// behind //go:build !race, and those that check their counts only when
// !raceEnabled. Each must be run by name by a Makefile line without -race
// (make unit's second line), or it never runs in make test.
func TestAllocationTestsRunWithoutRace(t *testing.T) {
	tests := makeTests(t)
	found := 0
	for _, f := range testFiles(t) {
		noRaceFile := raceOnly(t, f)
		for name, fn := range f.testFuncs(t) {
			if !noRaceFile && !mentions(fn, "raceEnabled") {
				continue
			}
			found++
			ran := false
			for _, mt := range tests {
				if !mt.race && mt.runs(f.dir) && slices.Contains(mt.names, name) {
					ran = true
				}
			}
			if !ran {
				t.Errorf("%s (%s) runs only without the race detector, and no Makefile line without -race runs it: add it to make unit's line `$(GO) test -count=1 -run '^(...)$$' ...`", name, f.dir)
			}
		}
	}
	if found < 3 {
		t.Fatalf("found %d tests that run only without the race detector, want at least 3; the walk is broken", found)
	}
}

// aloneTargets returns the targets whose ## block in makefile says they run
// alone (broker-restart-test, replacement-test).
func aloneTargets(makefile string) []string {
	head := regexp.MustCompile(`^## ([\w-]+): `)
	var alone []string
	name, text := "", ""
	flush := func() {
		if name != "" && strings.Contains(text, "runs alone") {
			alone = append(alone, name)
		}
		name, text = "", ""
	}
	for line := range strings.SplitSeq(makefile, "\n") {
		if m := head.FindStringSubmatch(line); m != nil {
			flush()
			name, text = m[1], line
			continue
		}
		if rest, ok := strings.CutPrefix(line, "##"); ok && name != "" {
			text += rest
			continue
		}
		flush()
	}
	flush()
	return alone
}

// testRuleProblems reports how makefile's test rule could run one of alone
// beside another target: as a prerequisite (make -j, or MAKEFLAGS=-j...,
// builds prerequisites side by side), or in a recipe line that is not
// `$(MAKE) -j1 ...`.
func testRuleProblems(makefile string, alone []string) []string {
	lines := strings.Split(strings.ReplaceAll(makefile, "\\\n", " "), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "test:") })
	if start < 0 {
		return []string{"no test: rule"}
	}
	var problems []string
	if prereqs := strings.Fields(strings.TrimPrefix(lines[start], "test:")); len(prereqs) > 0 {
		problems = append(problems, fmt.Sprintf("test: has prerequisites %v, which make -j (or MAKEFLAGS=-j...) runs side by side: "+
			"name them in its recipe's `$(MAKE) -j1 ...` line", prereqs))
	}
	ran := map[string]bool{}
	for _, line := range lines[start+1:] {
		if !strings.HasPrefix(line, "\t") {
			break
		}
		f := strings.Fields(line)
		jobs := slices.DeleteFunc(slices.Clone(f), func(s string) bool { return !strings.HasPrefix(s, "-j") && !strings.HasPrefix(s, "--jobs") })
		serial := len(f) > 0 && f[0] == "$(MAKE)" && slices.Equal(jobs, []string{"-j1"})
		for _, name := range alone {
			if !slices.Contains(f, name) {
				continue
			}
			ran[name] = true
			if !serial {
				problems = append(problems, fmt.Sprintf("%s runs alone, but test's recipe line %q is not `$(MAKE) -j1 ...`", name, strings.TrimSpace(line)))
			}
		}
	}
	for _, name := range alone {
		if !ran[name] && !slices.Contains(strings.Fields(strings.TrimPrefix(lines[start], "test:")), name) {
			problems = append(problems, fmt.Sprintf("make test does not run %s", name))
		}
	}
	return problems
}

// make test's first stage (lint, the suites, broker-restart-test,
// replacement-test, fuzz) runs one target at a time even under make -j or
// MAKEFLAGS=-j...: broker-restart-test restarts the machine's RabbitMQ and
// replacement-test counts every answer, so each must run alone. They were
// test's prerequisites, which make -j built side by side (helper-307).
func TestMakeTestRunsItsFirstStageInOrder(t *testing.T) {
	makefile := string(read(t, "Makefile"))
	alone := aloneTargets(makefile)
	if !slices.Contains(alone, "broker-restart-test") || !slices.Contains(alone, "replacement-test") {
		t.Fatalf("targets whose ## comment says they run alone: %v, want broker-restart-test and replacement-test; the parse is broken", alone)
	}
	for _, p := range testRuleProblems(makefile, alone) {
		t.Errorf("Makefile: %s", p)
	}
	// The check sees the shape that ran them side by side.
	parallel := "test: lint unit integration broker-restart-test replacement-test fuzz\n" +
		"\t$(MAKE) -j2 --output-sync=target chaos-short buildcheck bench-smoke\n"
	if p := testRuleProblems(parallel, alone); len(p) == 0 {
		t.Error("testRuleProblems accepts test's prerequisites")
	}
	if p := testRuleProblems("test:\n\t$(MAKE) -j2 lint unit broker-restart-test replacement-test\n", alone); len(p) != 2 {
		t.Errorf("testRuleProblems on a -j2 first stage: %v, want one problem per target that runs alone", p)
	}
}
