package ingress

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"
)

// readStep is how much of a body of unknown length is reserved at a time.
const readStep = 32 << 10

// readBody reads the delivery's body into d's buffer, bounded in size, in
// time (BodyReadTimeout from now, so a client trickling its body gives its
// slot back) and by the memory budgets: a body of known length reserves
// its length first, one of unknown length reserves as it is read.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, d *delivery) ([]byte, outcome, bool) {
	limit := h.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, h.tooLarge(w), false
	}
	// Writers without deadlines (in-process tests) just read without one.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.BodyReadTimeout))
	b := (*d.buf)[:0]
	if n := r.ContentLength; n >= 0 {
		if !d.reserve(n) {
			return nil, h.saturated(w, "ingress buffers full, retry later"), false
		}
		if int64(cap(b)) < n {
			b = make([]byte, 0, n)
		}
		b = b[:n]
		*d.buf = b
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, h.readFailed(w, err), false
		}
		return b, outcome{}, true
	}
	for {
		if int64(len(b)) == d.bytes {
			if d.bytes > limit {
				*d.buf = b
				return nil, h.tooLarge(w), false
			}
			// Up to one byte past the limit, which tells a body over it.
			if !d.reserve(min(readStep, limit+1-d.bytes)) {
				*d.buf = b
				return nil, h.saturated(w, "ingress buffers full, retry later"), false
			}
			b = slices.Grow(b, int(d.bytes)-len(b))
		}
		n, err := r.Body.Read(b[len(b):d.bytes])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*d.buf = b
			return nil, h.readFailed(w, err), false
		}
	}
	*d.buf = b
	if int64(len(b)) > limit {
		return nil, h.tooLarge(w), false
	}
	return b, outcome{}, true
}

func (h *Handler) tooLarge(w http.ResponseWriter) outcome {
	w.Header().Set("Connection", "close")
	return h.fail(w, outcome{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		message: fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBodyBytes)})
}

func (h *Handler) readFailed(w http.ResponseWriter, err error) outcome {
	w.Header().Set("Connection", "close")
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return h.fail(w, outcome{status: http.StatusRequestTimeout, code: "body_timeout",
			message: fmt.Sprintf("body not received within %s", h.cfg.BodyReadTimeout.Round(time.Millisecond)), err: err})
	}
	return h.fail(w, outcome{status: http.StatusBadRequest, code: "unreadable_body", message: "could not read body", err: err})
}
