package subscribe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/subscribe"
	"github.com/wahook/wahook/schemas"
)

// types maps every derived stream to its subscriber type.
var types = map[string]any{
	derive.LabelChanged:      subscribe.LabelChanged{},
	derive.ChatCreated:       subscribe.ChatCreated{},
	derive.Call:              subscribe.Call{},
	derive.GroupNotification: subscribe.GroupNotification{},
}

// TestTypesCoverStreams: every stream the code derives has a type, and
// Data picks it by the dataschema the envelope writes.
func TestTypesCoverStreams(t *testing.T) {
	for _, s := range derive.Streams {
		want, ok := types[s]
		if !ok {
			t.Errorf("stream %s has no subscriber type", s)
			continue
		}
		ev := event.New()
		ev.SetDataSchema(envelope.SchemaURI(s))
		_ = ev.SetData(envelope.JSON, json.RawMessage(`{}`))
		got, err := subscribe.Data(ev)
		if err != nil {
			t.Errorf("Data(%s): %v", s, err)
			continue
		}
		if reflect.TypeOf(got).Elem() != reflect.TypeOf(want) {
			t.Errorf("Data(%s) = %T, want *%T", s, got, want)
		}
	}
	ev := event.New()
	ev.SetDataSchema(envelope.SchemaBase + "label-changed.v2.json")
	if _, err := subscribe.Data(ev); !errors.Is(err, subscribe.ErrUnknownSchema) {
		t.Errorf("Data(v2) error = %v, want ErrUnknownSchema", err)
	}
}

// TestTypesMatchSchemas: every property of each schema (nested objects
// included) has a field, and every field is a property, so that a
// property added to a schema fails here until the type has it.
func TestTypesMatchSchemas(t *testing.T) {
	for stream, v := range types {
		var doc map[string]any
		b, err := schemas.FS.ReadFile(stream + ".v1.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		compareObject(t, stream, doc, reflect.TypeOf(v))
	}
}

func compareObject(t *testing.T, path string, schema map[string]any, typ reflect.Type) {
	t.Helper()
	props, _ := schema["properties"].(map[string]any)
	fields := jsonFields(typ)
	for name, p := range props {
		f, ok := fields[name]
		if !ok {
			t.Errorf("%s: schema property %q has no field in %s", path, name, typ)
			continue
		}
		ps, _ := p.(map[string]any)
		if ps["type"] == "object" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			compareObject(t, path+"."+name, ps, ft)
		}
	}
	for name := range fields {
		if _, ok := props[name]; !ok {
			t.Errorf("%s: field %q of %s is no schema property", path, name, typ)
		}
	}
}

// jsonFields are a struct's fields by JSON name, embedded structs' fields
// included.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = f
	}
	return out
}

// TestFixturesRoundTrip: every example in schemas/testdata is valid
// against its stream's schema, decodes into the type without unknown
// fields, and encodes back to the same JSON; a stream's examples use
// every property of its schema.
func TestFixturesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../../schemas/testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	used := map[string]map[string]bool{}
	for _, f := range files {
		stream, _, _ := strings.Cut(filepath.Base(f), ".")
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.Validate(stream+".v1.json", b); err != nil {
				t.Fatalf("fixture invalid: %v", err)
			}
			typ, ok := types[stream]
			if !ok {
				t.Fatalf("no type for stream %q", stream)
			}
			v := reflect.New(reflect.TypeOf(typ)).Interface()
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var want, got map[string]any
			_ = json.Unmarshal(b, &want)
			_ = json.Unmarshal(out, &got)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("round trip (-fixture +encoded):\n%s", d)
			}
			if used[stream] == nil {
				used[stream] = map[string]bool{}
			}
			collect(used[stream], "", want)
		})
	}
	for stream := range types {
		b, _ := schemas.FS.ReadFile(stream + ".v1.json")
		var doc map[string]any
		_ = json.Unmarshal(b, &doc)
		var missing []string
		for _, p := range properties("", doc) {
			if !used[stream][p] {
				missing = append(missing, p)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s: no fixture has %v", stream, missing)
		}
	}
}

func collect(into map[string]bool, prefix string, v map[string]any) {
	for k, x := range v {
		into[prefix+k] = true
		if m, ok := x.(map[string]any); ok {
			collect(into, prefix+k+".", m)
		}
	}
}

func properties(prefix string, schema map[string]any) []string {
	var out []string
	props, _ := schema["properties"].(map[string]any)
	for k, p := range props {
		out = append(out, prefix+k)
		if ps, _ := p.(map[string]any); ps["type"] == "object" {
			out = append(out, properties(prefix+k+".", ps)...)
		}
	}
	return out
}

// TestDeadLetterRedrivenType: Data picks the note's type by the dataschema
// the envelope writes on it, and the type has exactly the schema's
// properties.
func TestDeadLetterRedrivenType(t *testing.T) {
	ev := event.New()
	ev.SetDataSchema(envelope.DeadLetterRedrivenSchema)
	_ = ev.SetData(envelope.JSON, json.RawMessage(`{"deadletter_id":"dl1","ids":["r1"],"redriven_at":"2024-04-23T08:00:00Z"}`))
	got, err := subscribe.Data(ev)
	if err != nil {
		t.Fatalf("Data(note): %v", err)
	}
	n, ok := got.(*subscribe.DeadLetterRedriven)
	if !ok || n.DeadLetterID != "dl1" || len(n.IDs) != 1 || n.IDs[0] != "r1" || n.RedrivenAt.IsZero() {
		t.Fatalf("Data(note) = %#v", got)
	}
	var doc map[string]any
	b, err := schemas.FS.ReadFile("deadletter-redriven.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	compareObject(t, "deadletter-redriven", doc, reflect.TypeOf(subscribe.DeadLetterRedriven{}))
}
