package backbone

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag.Value for sizes in bytes: a whole number with an
// optional binary unit (KiB, MiB, GiB, TiB; K, M, G, T mean the same), or
// -1 for unlimited.
type byteSize struct{ p *int64 }

func newByteSize(p *int64, def int64) byteSize {
	*p = def
	return byteSize{p}
}

var byteUnits = [...]struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}, {"B", 0},
}

func (b byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b.p = n
	return nil
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	shift := uint(0)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, optionally with KiB, MiB, GiB or TiB", s)
	}
	if n == -1 && shift == 0 {
		return -1, nil
	}
	if n < 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q out of range", s)
	}
	return n << shift, nil
}

func (b byteSize) String() string {
	if b.p == nil {
		return "0"
	}
	return formatByteSize(*b.p)
}

func formatByteSize(n int64) string {
	for i := 3; i >= 0; i-- {
		u := byteUnits[i]
		if n > 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
