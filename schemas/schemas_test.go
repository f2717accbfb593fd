package schemas_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

func TestCompile(t *testing.T) {
	all, err := schemas.Compile()
	if err != nil {
		t.Fatalf("Compile() error: %v", err)
	}
	files, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatalf("Glob: %v", err)
	}
	if len(all) != len(files) {
		t.Errorf("Compile() = %d schemas, want one per file (%d)", len(all), len(files))
	}
	// Every dataschema wahook writes names a schema here.
	want := []string{envelope.DeadLetterSchema, envelope.DeadLetterRedrivenSchema}
	for _, s := range derive.Streams {
		want = append(want, envelope.SchemaURI(s))
	}
	for _, id := range want {
		if all[id] == nil {
			t.Errorf("Compile() has no schema %s", id)
		}
	}
}

// sha is a SHA-256 in hex, as body_parts carries it.
const sha = "3fe922af4d9cc7b04b0cc2a9d1acf0a2edce4e5853e1abb886a0ff42e35f939d"

const common = `"provider":"whapi","channel":"MANTIS-M72HC","occurred_at":"2024-04-22T13:27:33.123Z","source_event_id":"0f9a"`
const chat = `"chat_id":"919984351847@s.whatsapp.net","chat_id_raw":"919984351847@s.whatsapp.net","chat_type":"contact"`
const group = `"chat_id":"120363271212442249@g.us","chat_id_raw":"120363271212442249-group","chat_type":"group"`

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		schema  string
		data    string
		wantErr bool
	}{
		"label added":                   {schema: "label-changed.v1.json", data: `{` + common + `,` + chat + `,"label":{"id":"76","name":"New order","color":"gold"}}`},
		"label added by name only":      {schema: "label-changed.v1.json", data: `{` + common + `,` + chat + `,"label":{"name":"New order"}}`},
		"label updated":                 {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":"1","name":"B","color":"#DFE5E7","color_hex":"#DFE5E7"},"previous":{"name":"A"}}`},
		"label updated, empty prev":     {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":"1"},"previous":{}}`},
		"label deleted by unknown name": {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"name":"New order"}}`},
		"label without id or name":      {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"color":"gold"}}`, wantErr: true},
		"label without label":           {schema: "label-changed.v1.json", data: `{` + common + `}`, wantErr: true},
		"label on chat with previous":   {schema: "label-changed.v1.json", data: `{` + common + `,` + chat + `,"label":{"id":"1"},"previous":{"name":"A"}}`, wantErr: true},
		"label extra field":             {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":"1"},"labels":[]}`, wantErr: true},
		"label extra label field":       {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":"1","colour":"x"}}`, wantErr: true},
		"label numeric id":              {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":1}}`, wantErr: true},
		"label bad color_hex":           {schema: "label-changed.v1.json", data: `{` + common + `,"label":{"id":"1","color_hex":"gold"}}`, wantErr: true},
		"label chat_id without raw":     {schema: "label-changed.v1.json", data: `{` + common + `,"chat_id":"1@s.whatsapp.net","label":{"id":"1"}}`, wantErr: true},
		"label unknown chat_type":       {schema: "label-changed.v1.json", data: `{` + common + `,"chat_id":"x","chat_id_raw":"x","chat_type":"user","label":{"id":"1"}}`, wantErr: true},
		"label missing common":          {schema: "label-changed.v1.json", data: `{"provider":"whapi","channel":"C","occurred_at":"2024-04-22T13:27:33Z","label":{"id":"1"}}`, wantErr: true},
		"label not a date-time":         {schema: "label-changed.v1.json", data: `{"provider":"whapi","channel":"C","occurred_at":"yesterday","source_event_id":"x","label":{"id":"1"}}`, wantErr: true},
		"label impossible date-time":    {schema: "label-changed.v1.json", data: `{"provider":"whapi","channel":"C","occurred_at":"2024-13-45T25:00:00Z","source_event_id":"x","label":{"id":"1"}}`, wantErr: true},
		"label time not UTC":            {schema: "label-changed.v1.json", data: `{"provider":"whapi","channel":"C","occurred_at":"2024-04-22T13:27:33+02:00","source_event_id":"x","label":{"id":"1"}}`, wantErr: true},

		"chat inferred":             {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `,"inferred":true,"name":"Jonathan","direction":"incoming"}`},
		"chat unknown type omitted": {schema: "chat-created.v1.json", data: `{` + common + `,"chat_id":"abc","chat_id_raw":"abc","inferred":false}`},
		"chat with lid":             {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `,"chat_lid":"27033333333333@lid","inferred":true}`},
		"chat bad lid":              {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `,"chat_lid":"919984351847@s.whatsapp.net","inferred":true}`, wantErr: true},
		"call with lid":             {schema: "call.v1.json", data: `{` + common + `,` + chat + `,"chat_lid":"27033333333333@lid","call_id":"c1","from":"919984351847@s.whatsapp.net","video":false,"group_call":false,"status":"offer"}`},
		"call lid without chat":     {schema: "call.v1.json", data: `{` + common + `,"chat_lid":"27033333333333@lid","call_id":"c1","from":"919984351847@s.whatsapp.net","video":false,"group_call":false,"status":"offer"}`, wantErr: true},
		"group with lid":            {schema: "group-notification.v1.json", data: `{` + common + `,` + chat + `,"chat_lid":"27033333333333@lid","participants":[]}`},
		"label with lid":            {schema: "label-changed.v1.json", data: `{` + common + `,` + chat + `,"chat_lid":"27033333333333@lid","label":{"id":"76"}}`},
		"chat without inferred":     {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `}`, wantErr: true},
		"chat without chat":         {schema: "chat-created.v1.json", data: `{` + common + `,"inferred":false}`, wantErr: true},
		"chat bad direction":        {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `,"inferred":false,"direction":"in"}`, wantErr: true},
		"chat inferred is a string": {schema: "chat-created.v1.json", data: `{` + common + `,` + chat + `,"inferred":"true"}`, wantErr: true},

		"call missed":          {schema: "call.v1.json", data: `{` + common + `,` + chat + `,"call_id":"C1","from":"919984351847@s.whatsapp.net","video":true,"group_call":false,"status":"CALL_MISSED_VIDEO"}`},
		"call without chat":    {schema: "call.v1.json", data: `{` + common + `,"call_id":"C1","video":false,"group_call":false,"status":"call.accepted"}`},
		"call without status":  {schema: "call.v1.json", data: `{` + common + `,"call_id":"C1","video":false,"group_call":false}`, wantErr: true},
		"call without call_id": {schema: "call.v1.json", data: `{` + common + `,"video":false,"group_call":false,"status":"ringing"}`, wantErr: true},
		"call video missing":   {schema: "call.v1.json", data: `{` + common + `,"call_id":"C1","group_call":false,"status":"ringing"}`, wantErr: true},

		"group added":                 {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `,"participants":["61280155346@s.whatsapp.net"],"actor":"5544999999999@s.whatsapp.net"}`},
		"group setting":               {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `,"participants":[],"setting":{"name":"announcements","value":"true"},"request_method":"invite_link"}`},
		"group description cleared":   {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `,"participants":[],"description":""}`},
		"group no participants":       {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `}`, wantErr: true},
		"group repeated participant":  {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `,"participants":["1@s.whatsapp.net","1@s.whatsapp.net"]}`, wantErr: true},
		"group setting without value": {schema: "group-notification.v1.json", data: `{` + common + `,` + group + `,"participants":[],"setting":{"name":"announcements"}}`, wantErr: true},
		"group without group":         {schema: "group-notification.v1.json", data: `{` + common + `,"participants":[]}`, wantErr: true},

		"deadletter text":           {schema: "deadletter.v1.json", data: `{"reason":"not JSON","provider":"whapi","received_at":"2024-04-22T13:27:33.5+02:00","method":"POST","path":"/v1/webhooks/whapi","headers":{"Content-Type":"text/plain"},"body":"hello"}`},
		"deadletter empty body":     {schema: "deadletter.v1.json", data: `{"reason":"empty","provider":"zapi","channel":"X","received_at":"2024-04-22T13:27:33Z","body":""}`},
		"deadletter base64":         {schema: "deadletter.v1.json", data: `{"reason":"not UTF-8","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_base64":"/w==","source_event_id":"e1"}`},
		"deadletter both bodies":    {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body":"","body_base64":"/w=="}`, wantErr: true},
		"deadletter no body":        {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z"}`, wantErr: true},
		"deadletter bad base64":     {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_base64":"not base64!"}`, wantErr: true},
		"deadletter bad time":       {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22","body":""}`, wantErr: true},
		"deadletter header array":   {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body":"","headers":{"A":["b"]}}`, wantErr: true},
		"deadletter no reason":      {schema: "deadletter.v1.json", data: `{"provider":"waha","received_at":"2024-04-22T13:27:33Z","body":""}`, wantErr: true},
		"deadletter parts":          {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_parts":{"count":3,"size":2500,"part_size":1000,"sha256":"` + sha + `"}}`},
		"deadletter parts and body": {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body":"","body_parts":{"count":1,"size":1,"part_size":1,"sha256":"` + sha + `"}}`, wantErr: true},
		"deadletter parts no sha":   {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_parts":{"count":1,"size":1,"part_size":1}}`, wantErr: true},
		"deadletter parts bad sha":  {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_parts":{"count":1,"size":1,"part_size":1,"sha256":"XYZ"}}`, wantErr: true},
		"deadletter zero parts":     {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_parts":{"count":0,"size":1,"part_size":1,"sha256":"` + sha + `"}}`, wantErr: true},
		"deadletter parts extra":    {schema: "deadletter.v1.json", data: `{"reason":"r","provider":"waha","received_at":"2024-04-22T13:27:33Z","body_parts":{"count":1,"size":1,"part_size":1,"sha256":"` + sha + `","url":"x"}}`, wantErr: true},

		"redriven":           {schema: "deadletter-redriven.v1.json", data: `{"deadletter_id":"dl1","ids":["r1","r2"],"redriven_at":"2024-04-23T08:00:00Z"}`},
		"redriven no ids":    {schema: "deadletter-redriven.v1.json", data: `{"deadletter_id":"dl1","ids":[],"redriven_at":"2024-04-23T08:00:00Z"}`, wantErr: true},
		"redriven empty id":  {schema: "deadletter-redriven.v1.json", data: `{"deadletter_id":"dl1","ids":[""],"redriven_at":"2024-04-23T08:00:00Z"}`, wantErr: true},
		"redriven no record": {schema: "deadletter-redriven.v1.json", data: `{"ids":["r1"],"redriven_at":"2024-04-23T08:00:00Z"}`, wantErr: true},
		"redriven bad time":  {schema: "deadletter-redriven.v1.json", data: `{"deadletter_id":"dl1","ids":["r1"],"redriven_at":"today"}`, wantErr: true},
		"redriven extra":     {schema: "deadletter-redriven.v1.json", data: `{"deadletter_id":"dl1","ids":["r1"],"redriven_at":"2024-04-23T08:00:00Z","by":"x"}`, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			for _, uri := range []string{tc.schema, schemas.Base + tc.schema} {
				err := schemas.Validate(uri, []byte(tc.data))
				if gotErr := err != nil; gotErr != tc.wantErr {
					t.Errorf("Validate(%s) error = %v, want error: %v", uri, err, tc.wantErr)
				}
			}
		})
	}
}

// TestValidateDeadLetter checks the records envelope.DeadLetter writes.
func TestValidateDeadLetter(t *testing.T) {
	for name, body := range map[string][]byte{
		"text":   []byte(`{"messages":[}`),
		"empty":  {},
		"binary": {0xff, 0xfe, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			d := envelope.DeadLetter{
				Reason:     "not JSON",
				Provider:   "whapi",
				Channel:    "MANTIS-M72HC",
				ReceivedAt: time.Date(2024, 4, 22, 13, 27, 33, 5, time.UTC),
				Method:     "POST",
				Path:       "/v1/webhooks/whapi",
				Headers:    map[string]string{"Content-Type": "application/json"},
			}
			d.SetBody(body)
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if err := schemas.Validate(envelope.DeadLetterSchema, data); err != nil {
				t.Errorf("Validate(%s) error: %v", data, err)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	if err := schemas.Validate(schemas.Base+"other.v1.json", []byte(`{}`)); !errors.Is(err, schemas.ErrUnknown) {
		t.Errorf("Validate(other.v1.json) error = %v, want ErrUnknown", err)
	}
	if err := schemas.Validate("call.v1.json", []byte(`{`)); err == nil {
		t.Errorf("Validate(call.v1.json, broken JSON): no error")
	}
}
