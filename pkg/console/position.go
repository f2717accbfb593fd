package console

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/wahook/wahook/pkg/eventlog"
)

// maxPositionParam bounds the characters of a page's "after" parameter: a
// NATS page passes at most three streams, a Kafka one a partition or a
// few hundred, and a link of more would not fit a browser's address bar
// anyway.
const maxPositionParam = 4 << 10

var errPosition = errors.New("bad position")

// encodePosition writes p compactly for a link: for each source, in
// sorted order, its name's length, its name and its sequence as varints,
// in unpadded base64url. One position has one encoding, so that a link is
// stable and decodePosition can refuse any other.
func encodePosition(p eventlog.Position) string {
	var b []byte
	for _, src := range slices.Sorted(maps.Keys(p)) {
		b = binary.AppendUvarint(b, uint64(len(src)))
		b = append(b, src...)
		b = binary.AppendVarint(b, p[src])
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePosition reads what encodePosition wrote, within eventlog's bounds
// of a Query.After (the query's Check still has the last word): whatever
// it holds, the page keeps its range and caps, so a forged one can only
// start the page somewhere else in it.
func decodePosition(s string) (eventlog.Position, error) {
	if len(s) > maxPositionParam {
		return nil, fmt.Errorf("%w: %d characters, at most %d", errPosition, len(s), maxPositionParam)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: not one this console wrote", errPosition)
	}
	p := eventlog.Position{}
	last := ""
	for rest := b; len(rest) > 0; {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n == 0 || n > eventlog.MaxFilterLen || uint64(len(rest)-k) < n {
			return nil, fmt.Errorf("%w: source name of a bad length", errPosition)
		}
		rest = rest[k:]
		src := string(rest[:n])
		rest = rest[n:]
		seq, k := binary.Varint(rest)
		if k <= 0 || seq < -1 {
			return nil, fmt.Errorf("%w: source %.64q: bad sequence", errPosition, src)
		}
		rest = rest[k:]
		if len(p) > 0 && src <= last {
			return nil, fmt.Errorf("%w: sources out of order", errPosition)
		}
		if len(p) >= eventlog.MaxPositions {
			return nil, fmt.Errorf("%w: more than %d sources", errPosition, eventlog.MaxPositions)
		}
		p[src], last = seq, src
	}
	// Only the encoding encodePosition writes (minimal varints, no line
	// breaks or stray bits, which base64 would let through): two links to
	// one page are the same link.
	if encodePosition(p) != s {
		return nil, fmt.Errorf("%w: not one this console wrote", errPosition)
	}
	return p, nil
}

// pageArgs are what a list page reads besides its filters: where it
// starts (after, nil for the newest page) and how many it lists.
type pageArgs struct {
	After eventlog.Position
	N     int
}

// readPageArgs reads a list page's "after" (a position that page wrote in
// its "More" link) and "n" (how many a page lists, 1 to max, max when
// absent): a smaller page, never a larger one.
func readPageArgs(r *http.Request, max int) (pageArgs, error) {
	a := pageArgs{N: max}
	if s := r.FormValue("after"); s != "" {
		p, err := decodePosition(s)
		if err != nil {
			return a, fmt.Errorf("after: %w", err)
		}
		a.After = p
	}
	if s := r.FormValue("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			return a, fmt.Errorf("%w: n %.16q: want 1 to %d", errFilter, s, max)
		}
		a.N = n
	}
	return a, nil
}

// nextURL is the link to the page after one that ended at next, at path
// with the page's filters (a query string) and size (n when less than
// max); empty when there is no page after it. It is a template.URL: its
// parts are escaped already (the filters by their URL, the position by
// base64url).
func (a pageArgs) nextURL(path, filters string, next eventlog.Position, max int) template.URL {
	if len(next) == 0 {
		return ""
	}
	u := path + "?"
	if filters != "" {
		u += filters + "&"
	}
	if a.N != max {
		u += "n=" + strconv.Itoa(a.N) + "&"
	}
	return template.URL(u + "after=" + encodePosition(next))
}
