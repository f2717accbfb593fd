package console

import (
	"fmt"
	"html/template"
	"regexp"
	"strings"
)

// sparkline draws values as an inline SVG polyline, scaled to the largest,
// with the newest value at the right end.
func sparkline(values []float64) template.HTML {
	const w, h = 120.0, 24.0
	if len(values) < 2 {
		return template.HTML(fmt.Sprintf(`<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="collecting samples">`+
			`<line x1="0" y1="%g" x2="%g" y2="%g" stroke="currentColor" stroke-opacity=".35" stroke-dasharray="3 3"/></svg>`, w, h, w, h, h-1, w, h-1))
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="last %d samples, peak %.2f/s">`, w, h, w, h, len(values), top)
	b.WriteString(`<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="`)
	step := w
	if len(values) > 1 {
		step = w / float64(len(values)-1)
	}
	for i, v := range values {
		y := h - 1
		if top > 0 {
			y = h - 1 - v/top*(h-2)
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", float64(i)*step, y)
	}
	b.WriteString(`"/></svg>`)
	// Only numbers are formatted into the markup.
	return template.HTML(b.String())
}

var (
	hexColor   = regexp.MustCompile(`^#[0-9A-Fa-f]{6}$`)
	namedColor = regexp.MustCompile(`^[a-zA-Z]{3,20}$`)
)

// swatchColor is a label colour fit for an SVG fill: the hex colour when the
// provider gave one, else its colour name, else grey.
func swatchColor(hex, name string) string {
	switch {
	case hexColor.MatchString(hex):
		return hex
	case namedColor.MatchString(name):
		return strings.ToLower(name)
	}
	return "#999999"
}
