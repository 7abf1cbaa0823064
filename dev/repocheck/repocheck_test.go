// Package repocheck checks the repository itself: no build output is
// tracked, and every command's binary, as `go build ./cmd/<name>` writes it
// at the root, is ignored.
package repocheck

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// root is the repository's top directory, from git; the test is skipped
// outside a git work tree (a source archive).
func root(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git work tree (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

// executableMagic are the first bytes of the executables Go builds: ELF
// (Linux), Mach-O (macOS, 64 bit, either byte order) and PE (Windows, "MZ").
var executableMagic = [][]byte{
	{0x7f, 'E', 'L', 'F'},
	{0xcf, 0xfa, 0xed, 0xfe},
	{0xfe, 0xed, 0xfa, 0xcf},
	{'M', 'Z'},
}

// isExecutable reports whether the file at path starts as an executable.
func isExecutable(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, err
	}
	for _, m := range executableMagic {
		if n >= len(m) && bytes.Equal(head[:len(m)], m) {
			return true, nil
		}
	}
	return false, nil
}

func TestNoExecutableIsTracked(t *testing.T) {
	dir := root(t)
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for name := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		path := filepath.Join(dir, name)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		exe, err := isExecutable(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if exe {
			t.Errorf("%s is an executable, tracked: build outputs are never committed (git rm --cached %s; ignore it in .gitignore)", name, name)
		}
	}
}

func TestEveryCommandsBinaryIsIgnored(t *testing.T) {
	dir := root(t)
	cmds, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cmds {
		if !c.IsDir() {
			continue
		}
		n++
		// Where `go build ./cmd/<name>` writes it, at the root.
		check := exec.Command("git", "check-ignore", "-q", "--no-index", c.Name())
		check.Dir = dir
		if err := check.Run(); err != nil {
			t.Errorf("%s (go build ./cmd/%s at the root) is not in .gitignore: %v", c.Name(), c.Name(), err)
		}
	}
	if n == 0 {
		t.Fatal("no command under cmd/: the test checked nothing")
	}
}

func TestIsExecutableKnowsABuiltBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe, err := isExecutable(self); err != nil || !exe {
		t.Errorf("isExecutable(the test binary %s) = %v, %v; want true", self, exe, err)
	}
	src := filepath.Join(t.TempDir(), "a.go")
	if err := os.WriteFile(src, []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if exe, err := isExecutable(src); err != nil || exe {
		t.Errorf("isExecutable(a Go source file) = %v, %v; want false", exe, err)
	}
}
