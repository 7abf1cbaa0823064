package deploycheck

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// shellToken is a word or an operator of a /bin/sh script: the operators are
// ; ;; & && | || ( ) and the line break "\n"; a word keeps its quotes, its
// $(...) and its redirection (`>&2`, `"line">&2`, `2>/dev/null`) whole.
type shellToken struct {
	text string
	op   bool
}

// shellTokens splits script into words and operators as sh reads them, as
// far as silentRefusals needs: quotes, backslashes, $(...), ${...} and
// backquotes never split a word, and a comment is dropped. It reads no
// here-document and no arithmetic, which no compose command holds.
func shellTokens(script string) []shellToken {
	var toks []shellToken
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == '\n':
			toks = append(toks, shellToken{"\n", true})
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '\\' && i+1 < len(script) && script[i+1] == '\n': // a continued line
			i += 2
		case c == '#':
			for i < len(script) && script[i] != '\n' {
				i++
			}
		case strings.IndexByte(";&|()", c) >= 0:
			op := script[i : i+1]
			if c != '(' && c != ')' && i+1 < len(script) && script[i+1] == c {
				op = script[i : i+2]
			}
			toks = append(toks, shellToken{op, true})
			i += len(op)
		default:
			j := wordEnd(script, i)
			toks = append(toks, shellToken{script[i:j], false})
			i = j
		}
	}
	return toks
}

// wordEnd returns the index just past the word of s that starts at i.
func wordEnd(s string, i int) int {
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\':
			i += 2
		case c == '\'':
			i = closing(s, i+1, '\'')
		case c == '"':
			i = doubleQuoted(s, i+1)
		case c == '`':
			i = closing(s, i+1, '`')
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			i = substitution(s, i+2)
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			i = closing(s, i+2, '}')
		case c == '&' && i > 0 && (s[i-1] == '>' || s[i-1] == '<'): // >&2
			i++
		case strings.IndexByte(" \t\r\n;&|()", c) >= 0:
			return i
		default:
			i++
		}
	}
	return min(i, len(s))
}

// closing returns the index just past the first end at or after i (the end
// of s when there is none).
func closing(s string, i int, end byte) int {
	if j := strings.IndexByte(s[min(i, len(s)):], end); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

// doubleQuoted returns the index just past the " that closes the string
// opened before i.
func doubleQuoted(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == '\\':
			i += 2
		case s[i] == '"':
			return i + 1
		case strings.HasPrefix(s[i:], "$("):
			i = substitution(s, i+2)
		default:
			i++
		}
	}
	return len(s)
}

// substitution returns the index just past the ) that closes the $( opened
// before i.
func substitution(s string, i int) int {
	for depth := 1; i < len(s); {
		switch s[i] {
		case '\\':
			i += 2
		case '\'':
			i = closing(s, i+1, '\'')
		case '"':
			i = doubleQuoted(s, i+1)
		case '(':
			depth++
			i++
		case ')':
			if depth--; depth == 0 {
				return i + 1
			}
			i++
		default:
			i++
		}
	}
	return len(s)
}

// listStarts are the reserved words after which a command list begins;
// the first four make the list a condition.
var listStarts = []string{"if", "elif", "while", "until", "then", "do", "else", "{", "!"}

// variableWord is a test's operand that is a variable: $x, "$x", ${x},
// "${x}", ${x:-}, "${x-}".
var variableWord = regexp.MustCompile(`^"?\$(?:(\w+)|\{(\w+)(?::?-)?\})"?$`)

// emptinessTest reads the test command (`[ … ]` or `test …`) that starts at
// toks[i]: the variable it tests, whether it is true when that variable is
// set (-n, ! -z, a bare operand) rather than empty (-z, ! -n, ! operand),
// and the index of the operator that ends the command. ok is false for any
// other command or test.
func emptinessTest(toks []shellToken, i int) (variable string, whenSet bool, end int, ok bool) {
	if toks[i].op || (toks[i].text != "[" && toks[i].text != "test") {
		return "", false, 0, false
	}
	if i > 0 && !toks[i-1].op && !slices.Contains(listStarts, toks[i-1].text) {
		return "", false, 0, false // an argument, not a command
	}
	end = i + 1
	for end < len(toks) && !toks[end].op {
		end++
	}
	var args []string
	for _, t := range toks[i+1 : end] {
		args = append(args, t.text)
	}
	if toks[i].text == "[" {
		j := slices.Index(args, "]")
		if j < 0 {
			return "", false, 0, false
		}
		args = args[:j]
	}
	negated := len(args) > 1 && args[0] == "!"
	if negated {
		args = args[1:]
	}
	whenSet = true
	switch {
	case len(args) == 2 && args[0] == "-n":
		args = args[1:]
	case len(args) == 2 && args[0] == "-z":
		args, whenSet = args[1:], false
	case len(args) != 1:
		return "", false, 0, false
	}
	m := variableWord.FindStringSubmatch(args[0])
	if m == nil {
		return "", false, 0, false
	}
	return m[1] + m[2], whenSet != negated, end, true
}

// isLink reports whether toks[k] is && or ||.
func isLink(toks []shellToken, k int) bool {
	return k >= 0 && k < len(toks) && toks[k].op && (toks[k].text == "&&" || toks[k].text == "||")
}

// skipBreaks returns the index of the first token at or after k that is
// not a line break (sh reads on past a line break after && or ||).
func skipBreaks(toks []shellToken, k int) int {
	for k < len(toks) && toks[k].op && toks[k].text == "\n" {
		k++
	}
	return k
}

// matching returns the index of the token that closes the group opened at
// toks[k] ({ … } or ( … )), or len(toks).
func matching(toks []shellToken, k int) int {
	open, end := toks[k].text, "}"
	if open == "(" {
		end = ")"
	}
	for depth, j := 0, k; j < len(toks); j++ {
		if toks[j].op == (open == "(") {
			switch toks[j].text {
			case open:
				depth++
			case end:
				if depth--; depth == 0 {
					return j
				}
			}
		}
	}
	return len(toks)
}

// elementEnd returns the index just past the command (a simple command or a
// group with its redirections) that starts at toks[k].
func elementEnd(toks []shellToken, k int) int {
	if k < len(toks) && (toks[k].text == "{" && !toks[k].op || toks[k].text == "(" && toks[k].op) {
		k = matching(toks, k) + 1
	}
	for k < len(toks) && !toks[k].op {
		k++
	}
	return k
}

// elementStart returns the index of the first token of the command that
// ends at toks[k] (the mirror of elementEnd).
func elementStart(toks []shellToken, k int) int {
	for depth := 0; k >= 0; k-- {
		t := toks[k]
		switch {
		case !t.op && t.text == "}" || t.op && t.text == ")":
			depth++
		case !t.op && t.text == "{" || t.op && t.text == "(":
			if depth--; depth == 0 {
				return k
			}
		case depth == 0 && (t.op || slices.Contains(listStarts, t.text)):
			return k + 1
		}
	}
	return 0
}

// isCondition reports whether the command list holding the test at toks[i]
// is the condition of an if, an elif, a while or an until: it walks back
// over !, && and || links (and the line breaks after them) to the word the
// list starts after.
func isCondition(toks []shellToken, i int) bool {
	for k := i - 1; k >= 0; {
		t := toks[k]
		switch {
		case isLink(toks, k):
			k = elementStart(toks, k-1) - 1
		case t.op && t.text == "\n" && isLink(toks, k-1):
			k--
		case !t.op && t.text == "!":
			k--
		default:
			return !t.op && slices.Contains(listStarts[:4], t.text)
		}
	}
	return false
}

// commands splits the body of the group opened at toks[k] into its
// commands' words.
func commands(toks []shellToken, k int) [][]string {
	var out [][]string
	var words []string
	for _, t := range toks[k+1 : matching(toks, k)] {
		if !t.op {
			words = append(words, t.text)
			continue
		}
		if len(words) > 0 {
			out = append(out, words)
		}
		words = nil
	}
	if len(words) > 0 {
		out = append(out, words)
	}
	return out
}

// exits reports whether the command at toks[k] is an exit or a group that
// holds one.
func exits(toks []shellToken, k int) bool {
	if k >= len(toks) {
		return false
	}
	if !toks[k].op && toks[k].text == "exit" {
		return true
	}
	if toks[k].op || toks[k].text != "{" {
		return false
	}
	return slices.ContainsFunc(commands(toks, k), func(c []string) bool { return c[0] == "exit" })
}

// redirection is a word that redirects: >&2, 1>&2, 2>/dev/null, > file.
var redirection = regexp.MustCompile(`^[0-9]*[<>]`)

// failureStatus is an exit status that is not 0.
var failureStatus = regexp.MustCompile(`^[1-9][0-9]*$`)

// loud reports whether the command at toks[k] is a refusal that says so: a
// group whose last command is `exit N` (N at least 1) and that writes to
// stderr, with echo or printf, a quoted line saying the service is "not
// started", the redirection anywhere in that command.
func loud(toks []shellToken, k int) bool {
	if k >= len(toks) || toks[k].op || toks[k].text != "{" {
		return false
	}
	cmds := commands(toks, k)
	if len(cmds) < 2 {
		return false
	}
	last := cmds[len(cmds)-1]
	if len(last) != 2 || last[0] != "exit" || !failureStatus.MatchString(last[1]) {
		return false
	}
	return slices.ContainsFunc(cmds[:len(cmds)-1], func(c []string) bool {
		var name string
		stderr, line := false, false
		for _, w := range c {
			switch {
			case strings.HasSuffix(w, ">&2"):
				stderr = true
			case redirection.MatchString(w):
			case name == "":
				name = w
				continue
			}
			if (w[0] == '"' || w[0] == '\'') && strings.Contains(w, "not started") {
				line = true
			}
		}
		return (name == "echo" || name == "printf") && stderr && line
	})
}

// silentRefusals reports each test of script that stops the service on an
// empty variable without a line saying so (CheckSecretReads).
func silentRefusals(service, script string) []error {
	toks := shellTokens(script)
	var errs []error
	for i := range toks {
		variable, whenSet, end, ok := emptinessTest(toks, i)
		if !ok || isCondition(toks, i) {
			continue
		}
		if refuses(toks, i, end, whenSet) {
			var words []string
			for _, t := range toks[i:end] {
				words = append(words, t.text)
			}
			link := "||"
			if !whenSet {
				link = "&&"
			}
			errs = append(errs, fmt.Errorf("service %s: %s stops the service without a word when $%s is empty; follow it with %s { echo \"%s not started, the secret … is missing, unreadable or empty; …\" >&2; exit 1; }", service, strings.Join(words, " "), variable, link, service))
		}
	}
	return errs
}

// refuses reports whether the test toks[i:end], true when its variable is
// set (whenSet) or when it is empty, stops the script on an empty one
// without a line saying so.
func refuses(toks []shellToken, i, end int, whenSet bool) bool {
	if !whenSet {
		// True on an empty variable: it refuses one when && runs an exit.
		if !isLink(toks, end) || toks[end].text != "&&" {
			return false
		}
		k := skipBreaks(toks, end+1)
		return exits(toks, k) && !loud(toks, k)
	}
	// Past && links to the first ||: its command is the refusal. A test
	// followed by && and no || refuses nothing (set -e ignores a failure
	// before the last && of a list), nor does a negated one (set -e
	// ignores a !); the last command of a list stops the script under
	// set -e.
	k := end
	for isLink(toks, k) && toks[k].text == "&&" {
		k = elementEnd(toks, skipBreaks(toks, k+1))
	}
	if isLink(toks, k) {
		return !loud(toks, skipBreaks(toks, k+1))
	}
	negated := i > 0 && !toks[i-1].op && toks[i-1].text == "!"
	return k == end && !negated
}
