package logging

import "testing"

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		level, format string
		ok            bool
	}{
		{"info", "json", true},
		{"debug", "console", true},
		{"warn", "", true},
		{"loud", "json", false},
		{"info", "xml", false},
	} {
		log, err := New(tt.level, tt.format)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q, %q) error = %v; want ok %v", tt.level, tt.format, err, tt.ok)
			continue
		}
		if log != nil {
			log.Debug("test line")
			_ = log.Sync()
		}
	}
}
