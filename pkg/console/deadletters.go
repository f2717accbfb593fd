package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
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
	Letters(ctx context.Context, q eventlog.Query) ([]redrive.Letter, eventlog.Page, error)
}

// redriveSearch is how far back a redrive looks for its dead letter: the
// longest range the page lists.
const redriveSearch = 7 * 24 * time.Hour

type deadLettersPage struct {
	Filters filters
	Ranges  []string
	Letters []deadLetterRow
	// Older tells a page after the first; Next links to the page of
	// older dead letters, empty on the last.
	Older     bool
	Next      template.URL
	Truncated bool
	Scanned   int
	Error     string
	Redrive   bool
}

type deadLetterRow struct {
	envelope.DeadLetter
	ID       string
	Headers  []attr
	Body     string
	Redriven bool
}

// serveDeadLetters lists the dead letters of a range, newest first, with
// their bodies (put together when stored in parts) and whether they were
// redriven.
func (c *Console) serveDeadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := readFilters(r, "24h")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a, err := readPageArgs(r, deadLetterLimit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Streams = nil
	q := f.query()
	q.Streams, q.Limit, q.After = []eventlog.Stream{eventlog.DeadLetter}, a.N, a.After
	if err := q.Check(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := deadLettersPage{Filters: f, Ranges: rangeNames(), Redrive: c.cfg.Token != "", Older: a.After != nil}
	letters, page, err := c.cfg.Redriver.Letters(r.Context(), q)
	if err != nil {
		p.Error = err.Error()
	}
	p.Truncated, p.Scanned = page.Truncated, page.Scanned
	p.Next = a.nextURL("/console/deadletters", f.URL(), page.Next, deadLetterLimit)
	for i := len(letters) - 1; i >= 0; i-- {
		l := letters[i]
		row := deadLetterRow{DeadLetter: l.DeadLetter, ID: l.ID, Redriven: l.Redriven}
		for _, k := range slices.Sorted(maps.Keys(l.DeadLetter.Headers)) {
			row.Headers = append(row.Headers, attr{k, l.DeadLetter.Headers[k]})
		}
		if l.BodyErr != nil {
			row.Body = "(body incomplete: " + l.BodyErr.Error() + ")"
		} else {
			row.Body = pretty(l.Body)
		}
		p.Letters = append(p.Letters, row)
	}
	c.render(w, r, "deadletters", "Dead letters", p)
}

// deadLetterLimit is how many dead letters a page lists: their bodies are
// shown whole (up to maxShownBody each).
const deadLetterLimit = 50

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
