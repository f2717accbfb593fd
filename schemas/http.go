package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

// Path is where Handler is mounted: a schema's $id is Base followed by its
// file name, and Base's path is Path, so dataschema resolves against a
// running wahook too.
const Path = "/schemas/"

// AsyncAPI is the file name of the AsyncAPI document describing wahook's
// channels and messages.
const AsyncAPI = "asyncapi.yaml"

// file is one document Handler serves, with what its answer needs.
type file struct {
	data        []byte
	contentType string
	etag        string
}

// served are the schemas and the AsyncAPI document, read once: they are
// embedded in the binary.
var served = func() map[string]file {
	out := map[string]file{}
	names, _ := fs.Glob(FS, "*")
	for _, name := range names {
		b, err := FS.ReadFile(name)
		if err != nil {
			continue
		}
		ct := "application/schema+json"
		if path.Ext(name) == ".yaml" {
			ct = "application/yaml"
		}
		sum := sha256.Sum256(b)
		out[name] = file{data: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	return out
}()

// Names are the files Handler serves: every schema and the AsyncAPI
// document.
func Names() []string {
	names := make([]string, 0, len(served))
	for name := range served {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// cacheControl lets caches keep a document a day: a version's schema
// changes only compatibly (descriptions), and the ETag revalidates it.
const cacheControl = "public, max-age=86400"

// Handler serves GET and HEAD of Path + name for every schema file
// (application/schema+json) and the AsyncAPI document (application/yaml),
// with an ETag and If-None-Match; anything else under Path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, found := strings.CutPrefix(r.URL.Path, Path)
		f, ok := served[name]
		if !found || !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", cacheControl)
		h.Set("ETag", f.etag)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	})
}
