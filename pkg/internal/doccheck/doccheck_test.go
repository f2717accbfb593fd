package doccheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSlug(t *testing.T) {
	for _, tt := range []struct{ heading, want string }{
		{"Derived streams", "derived-streams"},
		{"A `make test` to trust", "a-make-test-to-trust"},
		{"Dependencies, and why", "dependencies-and-why"},
		{"LID and phone-number ids", "lid-and-phone-number-ids"},
		{"HTTP API", "http-api"},
		{"Ordering & scaling", "ordering--scaling"},
		{"snake_case data", "snake_case-data"},
		{"Évolution's «apikey»", "évolutions-apikey"},
	} {
		if got := Slug(tt.heading); got != tt.want {
			t.Errorf("Slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

func TestAnchors(t *testing.T) {
	text := "# Title\n\n## Notes\n\n```sh\n# not a heading\n```\n\n### Notes\n#hashtag\n## Closed ##\n"
	got := Anchors(text)
	for _, a := range []string{"title", "notes", "notes-1", "closed"} {
		if !got[a] {
			t.Errorf("no anchor %q in %v", a, got)
		}
	}
	if got["not-a-heading"] || got["hashtag"] || len(got) != 4 {
		t.Errorf("anchors %v, want title, notes, notes-1, closed", got)
	}
}

// TestCheckFindsBrokenLinks: every kind of broken link is reported, and
// nothing else.
func TestCheckFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n"+
		"[ok](docs/a.md) [ok](docs/a.md#part-one) [ok](#top) [ok](pkg) [ok](https://example.com/x#y)\n"+
		"[gone](docs/b.md) [bad anchor](docs/a.md#part-two) [bad self](#bottom)\n"+
		"`[in code](nowhere.md)`\n```\n[in a fence](nowhere.md)\n```\n"+
		"[not markdown](pkg#x)\n")
	write("docs/a.md", "# A\n\n## Part one\n\n[up](../README.md#top) [out](../../x.md)\n")
	write("pkg/x.go", "package x\n")

	links, problems, err := Check(root, []string{"README.md", "docs/a.md"})
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 10 { // the URL is no relative link
		t.Errorf("%d links, want 10: %v", len(links), links)
	}
	want := []string{
		`README.md:4: docs/b.md: no such file`,
		`README.md:4: docs/a.md#part-two: no heading "part-two" in docs/a.md`,
		`README.md:4: #bottom: no heading "bottom" in README.md`,
		`README.md:9: pkg#x: an anchor in a file that is not Markdown`,
		`docs/a.md:5: ../../x.md: outside the repository`,
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

// TestRepositoryLinks: the Markdown at the repository's root and in docs/
// links only to files and headings that exist; the README links every file
// of docs/, and each of them links back.
func TestRepositoryLinks(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no repository root at %s: %v", root, err)
	}
	top, _ := filepath.Glob(filepath.Join(root, "*.md"))
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if len(docs) == 0 {
		t.Fatal("no docs/*.md")
	}
	var files []string
	for _, f := range append(top, docs...) {
		rel, _ := filepath.Rel(root, f)
		files = append(files, filepath.ToSlash(rel))
	}
	links, problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}

	linked := map[string]map[string]bool{} // file -> files it links to
	for _, l := range links {
		path, _, _ := strings.Cut(l.Target, "#")
		if path == "" {
			continue
		}
		if linked[l.File] == nil {
			linked[l.File] = map[string]bool{}
		}
		linked[l.File][filepath.ToSlash(filepath.Join(filepath.Dir(l.File), path))] = true
	}
	for _, f := range files {
		if !strings.HasPrefix(f, "docs/") {
			continue
		}
		if !linked["README.md"][f] {
			t.Errorf("README.md does not link %s", f)
		}
		if !linked[f]["README.md"] {
			t.Errorf("%s does not link back to README.md", f)
		}
	}
}
