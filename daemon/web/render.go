package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"
)

type ctxKey struct{}

type sessionCtx struct {
	id   string
	sess session
}

func withSession(ctx context.Context, id string, s session) context.Context {
	return context.WithValue(ctx, ctxKey{}, sessionCtx{id, s})
}

func sessionOf(r *http.Request) session {
	c, _ := r.Context().Value(ctxKey{}).(sessionCtx)
	return c.sess
}

func sessionIDOf(r *http.Request) string {
	c, _ := r.Context().Value(ctxKey{}).(sessionCtx)
	return c.id
}

var funcs = template.FuncMap{
	"list":        func(v ...any) []any { return v },
	"falseAlarms": FalseAlarms,
	"pct": func(v float64) string {
		if math.IsNaN(v) {
			return "n/a"
		}
		return fmt.Sprintf("%.1f %%", 100*v)
	},
	"num": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", v)
	},
	"p": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"inputTime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02T15:04")
	},
}

// page is what every template gets: its data, the CSRF token for forms
// and scripts, and whether a logout button makes sense.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Logout bool
	Data   any
}

var titles = map[string]string{"login": "Log in", "status": "Status", "live": "Live", "events": "Events", "review": "Review", "train": "Train"}

// render executes a page into a buffer first, so a template error is a 500,
// not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var b bytes.Buffer
	p := page{Title: titles[name], Nav: name, CSRF: sessionOf(r).csrf, Logout: !s.loopbackOnly() && sessionOf(r).authed, Data: data}
	if err := s.tmpl.ExecuteTemplate(&b, name, p); err != nil {
		s.log.Error("web: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = b.WriteTo(w)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// jsonError answers an API request with {"error": msg}.
func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// sse prepares a server-sent event stream; send writes one event. The
// server has no write timeout (see Listen); the metrics' server, when
// shared, is not this one.
func sse(w http.ResponseWriter) (send func(event string, v any) error, ok bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		f.Flush()
		return nil
	}, true
}
