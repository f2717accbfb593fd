package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/redrive"
)

// Redriver redrives one dead letter (redrive.Redriver).
type Redriver interface {
	RedriveOne(ctx context.Context, id string, since time.Time, force bool) (redrive.Result, error)
}

// redriveSearch is how far back a redrive looks for its dead letter: the
// longest range the page lists.
const redriveSearch = 7 * 24 * time.Hour

type deadLettersPage struct {
	Filters filters
	Ranges  []string
	Letters []deadLetterRow
	More    bool
	Error   string
	Redrive bool
}

type deadLetterRow struct {
	envelope.DeadLetter
	ID       string
	Headers  []attr
	Body     string
	Redriven *envelope.Redriven
}

// serveDeadLetters lists the dead letters of a range, newest first, with
// their redrive notes.
func (c *Console) serveDeadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r, "24h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Streams = []string{string(eventlog.DeadLetter)}
	p := deadLettersPage{Filters: f, Ranges: rangeNames(), Redrive: c.cfg.Redriver != nil && c.cfg.Token != ""}
	q := f.query()
	q.Types = []string{envelope.DeadLetterType, envelope.DeadLetterRedrivenType}
	page, err := c.cfg.Events.Query(r.Context(), q)
	if err != nil {
		p.Error = err.Error()
	}
	p.More = page.Truncated || len(page.Records) == q.Limit
	notes := map[string]*envelope.Redriven{}
	for _, rec := range page.Records {
		if rec.Event.Type() == envelope.DeadLetterRedrivenType {
			var n envelope.Redriven
			if json.Unmarshal(rec.Event.Data(), &n) == nil {
				notes[n.DeadLetterID] = &n
			}
		}
	}
	for i := len(page.Records) - 1; i >= 0; i-- {
		rec := page.Records[i]
		if rec.Event.Type() != envelope.DeadLetterType {
			continue
		}
		row := deadLetterRow{ID: rec.Event.ID(), Redriven: notes[rec.Event.ID()]}
		if err := json.Unmarshal(rec.Event.Data(), &row.DeadLetter); err != nil {
			row.Reason = "undecodable dead letter: " + err.Error()
		}
		for _, k := range slices.Sorted(maps.Keys(row.DeadLetter.Headers)) {
			row.Headers = append(row.Headers, attr{k, row.DeadLetter.Headers[k]})
		}
		switch d := row.DeadLetter; {
		case d.Body != nil:
			row.Body = pretty([]byte(*d.Body))
		case d.BodyBase64 != "":
			raw, err := base64.StdEncoding.DecodeString(d.BodyBase64)
			if err != nil {
				row.Body = "(body_base64 undecodable)"
				break
			}
			row.Body = pretty(raw)
		case d.BodyParts != nil:
			row.Body = "(body of " + bytesText(float64(d.BodyParts.Size)) + " stored in parts: tail redrive reads it)"
		}
		p.Letters = append(p.Letters, row)
	}
	c.render(w, r, "deadletters", "Dead letters", p)
}

// redriveTimeout bounds one redrive.
const redriveTimeout = 30 * time.Second

// serveRedrive redrives one dead letter. It needs the token in its header,
// and refuses requests another origin's page sent.
func (c *Console) serveRedrive(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, msg string, ids []string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "ids": ids})
	}
	if c.cfg.Redriver == nil || c.cfg.Token == "" {
		answer(http.StatusForbidden, "the console is read-only: no token is configured", nil)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		answer(http.StatusForbidden, "cross-site request refused", nil)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
		answer(http.StatusForbidden, "cross-origin request refused", nil)
		return
	}
	if !c.authorized(r) {
		c.cfg.Logger.Warn("console: redrive refused: wrong or missing token", zap.String("remote", r.RemoteAddr))
		answer(http.StatusUnauthorized, "wrong or missing console token", nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	id := r.FormValue("id")
	if id == "" || len(id) > maxFilter {
		answer(http.StatusBadRequest, "dead letter id missing or too long", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), redriveTimeout)
	defer cancel()
	// Never forced: a dead letter redriven before is not published again.
	res, err := c.cfg.Redriver.RedriveOne(ctx, id, time.Now().Add(-redriveSearch), false)
	switch {
	case errors.Is(err, redrive.ErrNotFound):
		answer(http.StatusNotFound, err.Error(), nil)
	case err != nil:
		c.cfg.Logger.Error("console: redrive", zap.String("deadletter_id", id), zap.Error(err))
		answer(http.StatusBadGateway, err.Error(), nil)
	case res.Action == redrive.AlreadyRedriven:
		answer(http.StatusConflict, "redriven before: nothing published", res.IDs)
	case res.Action == redrive.Refused:
		answer(http.StatusConflict, "refused: "+res.Why, nil)
	default:
		c.cfg.Logger.Info("console: dead letter redriven", zap.String("deadletter_id", id), zap.Strings("ids", res.IDs))
		answer(http.StatusOK, fmt.Sprintf("redriven: %d events", len(res.IDs)), res.IDs)
	}
}
