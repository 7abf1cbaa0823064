// Package buildcheck proves that every function of the stack file builds the
// way its image will: it shrinkwraps each function exactly as
// `faas-cli build --shrinkwrap` does (go-sdk's builder.CreateBuildContext) and
// runs, inside each build context, the RUN steps that the template's
// Dockerfile runs after `COPY . .`. The steps are read from the Dockerfile
// itself, so the check and the image can never drift apart.
package buildcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Stage is what the check needs from the Dockerfile's build stage.
type Stage struct {
	// Name is the stage's name (`FROM … AS name`), empty when unnamed.
	Name string
	// Workdir is the image's working directory when the steps run.
	Workdir string
	// Env holds the stage's ENV assignments made before `COPY . .`, in order,
	// as KEY=value.
	Env []string
	// Steps are the shell commands of the RUN instructions that follow
	// `COPY . .`, with line continuations joined, in order.
	Steps []string
}

// ParseDockerfile returns the stage that contains `COPY . .` (the build
// stage of the shop-go template). It fails when no stage copies the context,
// when it does so more than once, or when a RUN step uses the exec (JSON)
// form, which the check cannot run through `sh -c` faithfully.
func ParseDockerfile(src []byte) (Stage, error) {
	instrs, err := instructions(src)
	if err != nil {
		return Stage{}, err
	}
	var (
		cur     Stage
		found   bool
		copied  bool
		result  Stage
		inBuild bool
	)
	finish := func() {
		if inBuild {
			result = cur
		}
	}
	for _, in := range instrs {
		switch in.keyword {
		case "FROM":
			finish()
			cur = Stage{Name: stageName(in.args)}
			inBuild, copied = false, false
		case "WORKDIR":
			if strings.HasPrefix(in.args, "/") || cur.Workdir == "" {
				cur.Workdir = in.args
			} else {
				cur.Workdir = strings.TrimSuffix(cur.Workdir, "/") + "/" + in.args
			}
		case "ENV":
			if !copied {
				cur.Env = append(cur.Env, envPairs(in.args)...)
			}
		case "COPY":
			if isContextCopy(in.args) {
				if found {
					return Stage{}, fmt.Errorf("dockerfile line %d: the context is copied a second time (COPY . .)", in.line)
				}
				found, copied, inBuild = true, true, true
			}
		case "RUN":
			if !copied {
				continue
			}
			if strings.HasPrefix(in.args, "[") {
				return Stage{}, fmt.Errorf("dockerfile line %d: RUN in exec form is not supported by the build check", in.line)
			}
			cur.Steps = append(cur.Steps, in.args)
		}
	}
	finish()
	if !found {
		return Stage{}, errors.New("dockerfile: no stage copies the context (COPY . .)")
	}
	return result, nil
}

type instruction struct {
	line    int
	keyword string
	args    string
}

// instructions splits a Dockerfile into instructions, joining lines that end
// with a backslash and dropping comment lines (also inside continuations, as
// BuildKit does) and blank lines.
func instructions(src []byte) ([]instruction, error) {
	var out []instruction
	var buf strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && buf.Len() == 0) {
			continue
		}
		if buf.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			buf.WriteString(cont)
			continue
		}
		buf.WriteString(line)
		if err := appendInstruction(&out, start, buf.String()); err != nil {
			return nil, err
		}
		buf.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if buf.Len() > 0 {
		if err := appendInstruction(&out, start, buf.String()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func appendInstruction(out *[]instruction, line int, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	kw, args, _ := strings.Cut(text, " ")
	if kw == "" {
		return fmt.Errorf("dockerfile line %d: empty instruction", line)
	}
	*out = append(*out, instruction{line: line, keyword: strings.ToUpper(kw), args: strings.TrimSpace(args)})
	return nil
}

// stageName returns the name after AS in a FROM instruction's arguments.
func stageName(args string) string {
	f := strings.Fields(args)
	for i := 0; i+1 < len(f); i++ {
		if strings.EqualFold(f[i], "AS") {
			return f[i+1]
		}
	}
	return ""
}

// isContextCopy reports whether COPY's arguments copy the whole context to
// the working directory (`COPY . .`, possibly with flags such as --chown).
func isContextCopy(args string) bool {
	var rest []string
	for _, f := range strings.Fields(args) {
		if !strings.HasPrefix(f, "--") {
			rest = append(rest, f)
		}
	}
	return len(rest) == 2 && rest[0] == "." && (rest[1] == "." || rest[1] == "./")
}

// envPairs reads `ENV k=v k2="v 2"` and the legacy `ENV k v` form.
func envPairs(args string) []string {
	if !strings.Contains(strings.SplitN(args, " ", 2)[0], "=") {
		k, v, _ := strings.Cut(args, " ")
		return []string{k + "=" + strings.TrimSpace(v)}
	}
	var out []string
	for _, f := range shellFields(args) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// shellFields splits on blanks outside double or single quotes and removes
// the quotes, enough for ENV values.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inField := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inField = r, true
		case r == ' ' || r == '\t':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if inField {
		out = append(out, cur.String())
	}
	return out
}
