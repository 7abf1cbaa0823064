package buildcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDockerfile(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    Stage
		wantErr string
	}{
		{
			name: "steps after COPY . . of the copying stage only, continuations joined",
			src: `FROM alpine AS first
RUN echo not-this
FROM golang:1.26 AS build
ENV CGO_ENABLED=0 A="x y"
ENV LEGACY value here
WORKDIR /go/src
WORKDIR handler
RUN echo before-copy
COPY --chown=1:1 . .
# a comment
RUN echo one \
    && echo two
RUN echo three \
# comment inside a continuation
    four
ENV AFTER=1

FROM alpine AS ship
RUN echo ship
`,
			want: Stage{Name: "build", Workdir: "/go/src/handler",
				Env:   []string{"CGO_ENABLED=0", "A=x y", "LEGACY=value here"},
				Steps: []string{"echo one     && echo two", "echo three     four"}},
		},
		{name: "no COPY . .", src: "FROM alpine\nRUN true\n", wantErr: "no stage copies the context"},
		{name: "two COPY . .", src: "FROM a\nCOPY . .\nFROM b\nCOPY . .\n", wantErr: "copied a second time"},
		{name: "exec form", src: "FROM a\nCOPY . .\nRUN [\"go\", \"build\"]\n", wantErr: "exec form"},
		{name: "COPY of something else does not count", src: "FROM a\nCOPY go.mod .\nRUN true\n", wantErr: "no stage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDockerfile([]byte(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTemplateDockerfile pins what the check runs for the real template:
// the gofmt gate, vet, short tests and the build, in that order, none of
// which writes outside the build context.
func TestTemplateDockerfile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "template", Lang, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseDockerfile(src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "build" || st.Workdir != "/go/src/handler" {
		t.Errorf("stage %q workdir %q, want build /go/src/handler", st.Name, st.Workdir)
	}
	wants := []string{"gofmt -l", "go vet", "go test", "go build"}
	if len(st.Steps) != len(wants) {
		t.Fatalf("steps = %q, want %d", st.Steps, len(wants))
	}
	for i, w := range wants {
		if !strings.Contains(st.Steps[i], w) {
			t.Errorf("step %d = %q, want it to run %s", i, st.Steps[i], w)
		}
		for _, f := range strings.Fields(st.Steps[i]) {
			if strings.HasPrefix(f, "/") {
				t.Errorf("step %d uses the absolute path %s; steps must stay inside the build context", i, f)
			}
		}
	}
}

func TestStepEnv(t *testing.T) {
	got := StepEnv([]string{"PWD=/elsewhere", "GOFLAGS=-mod=mod", "CGO_ENABLED=1"}, Stage{Env: []string{"X=1"}})
	want := []string{"GOFLAGS=-mod=mod", "CGO_ENABLED=1", "X=1", "TARGETPLATFORM=linux/amd64", "BUILDPLATFORM=linux/amd64",
		"TARGETOS=linux", "TARGETARCH=amd64", "CGO_ENABLED=0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
