// Package repocheck checks the repository itself: no build output is
// tracked, every command's binary, as `go build ./cmd/<name>` writes it
// at the root, is ignored, and README.md's Layout table names every
// top-level folder.
package repocheck

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// isExecutable reports whether content starts as an executable Go can
// build: ELF (Linux), Mach-O (macOS, 64 bit, either byte order), or PE
// (Windows: "MZ", and at the offset stored at 0x3c the signature "PE\0\0").
func isExecutable(content []byte) bool {
	for _, m := range [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xcf}} {
		if bytes.HasPrefix(content, m) {
			return true
		}
	}
	if !bytes.HasPrefix(content, []byte("MZ")) || len(content) < 0x40 {
		return false
	}
	off := int(binary.LittleEndian.Uint32(content[0x3c:]))
	return off >= 0x40 && off+4 <= len(content) && bytes.Equal(content[off:off+4], []byte("PE\x00\x00"))
}

// trackedBlobs passes each file of git's index (what is committed or
// staged, whatever the work tree holds) to fn with its content.
func trackedBlobs(t *testing.T, dir string, fn func(path string, content []byte)) {
	t.Helper()
	ls := exec.Command("git", "ls-files", "-s", "-z")
	ls.Dir = dir
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var paths, oids []string
	for entry := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		// <mode> <object> <stage>\t<path>
		meta, path, ok := strings.Cut(entry, "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 {
			t.Fatalf("git ls-files -s: unexpected entry %q", entry)
		}
		if fields[0] == "120000" || fields[0] == "160000" {
			continue // a symbolic link or a submodule
		}
		paths, oids = append(paths, path), append(oids, fields[1])
	}
	cat := exec.Command("git", "cat-file", "--batch")
	cat.Dir = dir
	cat.Stdin = strings.NewReader(strings.Join(oids, "\n") + "\n")
	blobs, err := cat.Output()
	if err != nil {
		t.Fatalf("git cat-file --batch: %v", err)
	}
	r := bufio.NewReader(bytes.NewReader(blobs))
	for i, path := range paths {
		// <object> blob <size>\n<content>\n
		header, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("git cat-file --batch, %s: %v", path, err)
		}
		f := strings.Fields(header)
		if len(f) != 3 || f[0] != oids[i] || f[1] != "blob" {
			t.Fatalf("git cat-file --batch, %s: header %q", path, header)
		}
		size, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("git cat-file --batch, %s: header %q", path, header)
		}
		content := make([]byte, size+1)
		if _, err := io.ReadFull(r, content); err != nil {
			t.Fatalf("git cat-file --batch, %s: %v", path, err)
		}
		fn(path, content[:size])
	}
}

func TestNoExecutableIsTracked(t *testing.T) {
	n := 0
	trackedBlobs(t, root(t), func(path string, content []byte) {
		n++
		if isExecutable(content) {
			t.Errorf("%s is an executable, tracked: build outputs are never committed (git rm --cached %s; ignore it in .gitignore)", path, path)
		}
	})
	if n == 0 {
		t.Fatal("git tracks no file: the test checked nothing")
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
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	pe := make([]byte, 0x84)
	copy(pe, "MZ")
	binary.LittleEndian.PutUint32(pe[0x3c:], 0x80)
	copy(pe[0x80:], "PE\x00\x00")
	for _, tt := range []struct {
		name    string
		content []byte
		want    bool
	}{
		{"the test binary", bin, true},
		{"a PE header", pe, true},
		{"a Go source file", []byte("package a\n"), false},
		{"text opening with MZ", []byte("MZ is a postcode area in the text of a fixture, long enough to hold 0x3c and more"), false},
		{"an empty file", nil, false},
	} {
		if got := isExecutable(tt.content); got != tt.want {
			t.Errorf("isExecutable(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestTheReadmeLayoutNamesEveryTopLevelFolder: README.md's Layout table says
// it lists every top-level folder; each folder git tracks a file in must
// have a row whose path starts with it ("`api/`", "`deploy/kubernetes/`").
func TestTheReadmeLayoutNamesEveryTopLevelFolder(t *testing.T) {
	dir := root(t)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no \"## Layout\" section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	ls := exec.Command("git", "ls-files", "-z")
	ls.Dir = dir
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	seen := map[string]bool{}
	for path := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		top, _, ok := strings.Cut(path, "/")
		if !ok || seen[top] {
			continue
		}
		seen[top] = true
		if !strings.Contains(layout, "\n| `"+top+"/") {
			t.Errorf("README.md's Layout table has no row for the top-level folder %s/", top)
		}
	}
}
