package console

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/state"
)

// maxFilter bounds a filter value taken from a request.
const maxFilter = 256

type labelsPage struct {
	Events    bool // event ids link to their page
	Available bool
	Error     string
	Channels  []state.ProviderChannel
	Provider  string
	Channel   string
	Labels    []state.Label
}

// serveLabels shows the label registry: the channels that have labels,
// and one channel's labels.
func (c *Console) serveLabels(w http.ResponseWriter, r *http.Request) {
	p := labelsPage{Provider: r.FormValue("provider"), Channel: r.FormValue("channel"), Events: c.cfg.Events != nil}
	if len(p.Provider) > maxFilter || len(p.Channel) > maxFilter {
		http.Error(w, "provider or channel too long", http.StatusBadRequest)
		return
	}
	reg := c.cfg.Labels()
	if reg == nil {
		c.render(w, r, "labels", "Labels", p)
		return
	}
	p.Available = true
	var err error
	if p.Channels, err = reg.Channels(r.Context()); err != nil {
		c.cfg.Logger.Warn("console: list label channels", zap.Error(err))
		p.Error = err.Error()
	}
	if p.Provider == "" && p.Channel == "" && len(p.Channels) > 0 {
		p.Provider, p.Channel = p.Channels[0].Provider, p.Channels[0].Channel
	}
	if p.Error == "" && p.Provider != "" {
		if p.Labels, err = reg.List(r.Context(), p.Provider, p.Channel); err != nil {
			c.cfg.Logger.Warn("console: list labels", zap.Error(err))
			p.Error = err.Error()
		}
	}
	c.render(w, r, "labels", "Labels", p)
}
