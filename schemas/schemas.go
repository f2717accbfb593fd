// Package schemas holds the JSON Schemas (draft 2020-12) of wahook's derived
// event data and dead-letter records, one file per event family, versioned in
// the file name. Each schema's $id is Base followed by its file name, which
// is what the events' dataschema attribute names.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Base prefixes every schema's $id.
const Base = "https://wahook.dev/schemas/"

// FS holds the schema files and the AsyncAPI document, for serving or
// publishing them.
//
//go:embed *.json asyncapi.yaml
var FS embed.FS

// ErrUnknown is returned by Validate for a URI that names no schema here.
var ErrUnknown = errors.New("schemas: unknown schema")

// Compile compiles every schema, with format assertions on (so occurred_at
// must be a date-time), keyed by $id. A file whose $id is not Base followed
// by its name is an error, so dataschema URIs and files cannot drift apart.
func Compile() (map[string]*jsonschema.Schema, error) {
	files, err := fs.Glob(FS, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	ids := make([]string, 0, len(files))
	for _, name := range files {
		b, err := FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", name, err)
		}
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		if id != Base+name {
			return nil, fmt.Errorf("schema %s: $id is %q, want %q", name, id, Base+name)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", name, err)
		}
		ids = append(ids, id)
	}
	out := make(map[string]*jsonschema.Schema, len(ids))
	for _, id := range ids {
		s, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", id, err)
		}
		out[id] = s
	}
	return out, nil
}

// compiled is Compile's result, built on first use: the files are embedded,
// so it cannot change while the program runs.
var compiled = sync.OnceValues(Compile)

// Validate checks JSON data against the schema named by schemaURI: its $id,
// or just its file name ("label-changed.v1.json").
func Validate(schemaURI string, data []byte) error {
	all, err := compiled()
	if err != nil {
		return err
	}
	id := schemaURI
	if !strings.Contains(id, "/") {
		id = Base + id
	}
	s, ok := all[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknown, schemaURI)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("validate against %s: data is not JSON: %w", id, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("validate against %s: %w", id, err)
	}
	return nil
}
