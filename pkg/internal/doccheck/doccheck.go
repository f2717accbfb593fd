// Package doccheck checks the repository's Markdown: every relative link
// names a file that exists and, when it has a fragment, a heading of that
// file, so moving text between files cannot leave a link dangling.
package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

var (
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// [text](target) or [text](target "title"); text may hold brackets
	// of its own only inside code spans, which are removed first.
	link = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
)

// Slug is the anchor GitHub gives a heading: lower case, every character
// that is not a letter, digit, space, '-' or '_' dropped, spaces made '-'.
func Slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// line is a line of a Markdown file outside fenced code blocks.
type line struct {
	n    int // from 1
	text string
}

func prose(text string) []line {
	var out []line
	fence := ""
	for i, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fence = t[:3]
			continue
		}
		out = append(out, line{i + 1, l})
	}
	return out
}

// Anchors returns the anchors of a Markdown file's headings, with GitHub's
// suffixes for repeated ones (-1, -2, …).
func Anchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, l := range prose(text) {
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		s := Slug(m[1])
		if n := seen[s]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	}
	return anchors
}

// Link is one relative link of a Markdown file.
type Link struct {
	File   string // the file it is in
	Line   int
	Target string // as written
}

// Links returns the relative links of a Markdown file: not to a URL with a
// scheme, not inside code.
func Links(file, text string) []Link {
	var out []Link
	for _, l := range prose(text) {
		for _, m := range link.FindAllStringSubmatch(codeSpan.ReplaceAllString(l.text, ""), -1) {
			target := strings.Trim(m[1], "<>")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			out = append(out, Link{File: file, Line: l.n, Target: target})
		}
	}
	return out
}

// Check resolves every link of the Markdown files (paths relative to root,
// with '/'): it returns the links and one problem per link that does not
// resolve.
func Check(root string, files []string) ([]Link, []string, error) {
	var links []Link
	var problems []string
	anchorsOf := map[string]map[string]bool{}
	anchors := func(path string) (map[string]bool, error) {
		if a, ok := anchorsOf[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			return nil, err
		}
		anchorsOf[path] = Anchors(string(b))
		return anchorsOf[path], nil
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, nil, err
		}
		for _, l := range Links(f, string(b)) {
			links = append(links, l)
			path, frag, _ := strings.Cut(l.Target, "#")
			if path == "" {
				path = f
			} else {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
			}
			where := fmt.Sprintf("%s:%d: %s", l.File, l.Line, l.Target)
			if path == ".." || strings.HasPrefix(path, "../") {
				problems = append(problems, where+": outside the repository")
				continue
			}
			fi, err := os.Stat(filepath.Join(root, path))
			if err != nil {
				problems = append(problems, where+": no such file")
				continue
			}
			if frag == "" {
				continue
			}
			if fi.IsDir() || !strings.HasSuffix(path, ".md") {
				problems = append(problems, where+": an anchor in a file that is not Markdown")
				continue
			}
			a, err := anchors(path)
			if err != nil {
				return nil, nil, err
			}
			if !a[frag] {
				problems = append(problems, fmt.Sprintf("%s: no heading %q in %s", where, frag, path))
			}
		}
	}
	return links, problems, nil
}
