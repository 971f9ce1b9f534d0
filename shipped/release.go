// Package shipped describes the model the project ships in this folder
// (MODEL_CARD.md, metrics.json, SHA256SUMS), so that the daemon can say
// which model runs and how far its verdicts can be trusted: the page shows
// it beside the model's ids.
package shipped

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

var (
	//go:embed MODEL_CARD.md
	card string
	//go:embed metrics.json
	metrics []byte
	//go:embed SHA256SUMS
	sums string
)

// Release is the shipped model as its card and measurements describe it.
type Release struct {
	Name     string // the card's title, e.g. "deepfaked-dfdc v1"
	Released string // the card's release date
	// Backbones and Head are the files' ids as verdicts carry them (the
	// sha256's first 12 hex digits): the float and INT8 backbones, the head.
	Backbones []string
	Head      string
	// AUCs on sets it never trained on: held-out DFDC faces and StyleGAN2
	// faces (INT8); Videos how many test videos it gets right, of how many.
	DFDCAUC, StyleGANAUC float64
	VideosRight, Videos  int
}

// Card is the shipped model's card (Markdown), for the page to serve.
func Card() string { return card }

// idLen is how many hex digits of a file's sha256 make its id.
const idLen = 12

// Get reads the release from the embedded files.
func Get() (Release, error) {
	var r Release
	if m := regexp.MustCompile(`(?m)^# Model card: (.+)$`).FindStringSubmatch(card); m != nil {
		r.Name = strings.TrimSpace(m[1])
	}
	if m := regexp.MustCompile(`Released (\d{4}-\d{2}-\d{2})`).FindStringSubmatch(card); m != nil {
		r.Released = m[1]
	}
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if !ok || len(sum) < idLen {
			return r, fmt.Errorf("shipped: SHA256SUMS line %q", line)
		}
		switch {
		case strings.HasPrefix(file, "backbone"):
			r.Backbones = append(r.Backbones, sum[:idLen])
		case file == "head.onnx":
			r.Head = sum[:idLen]
		}
	}
	var m struct {
		Test struct {
			INT8 map[string]struct {
				AUC float64 `json:"auc"`
			} `json:"int8"`
		} `json:"test"`
		Videos struct {
			Rule    string `json:"rule"`
			Metrics map[string]struct {
				N         int     `json:"n"`
				Accuracy  float64 `json:"accuracy"`
				Confusion [2][2]int
			} `json:"metrics"`
		} `json:"videos"`
	}
	if err := json.Unmarshal(metrics, &m); err != nil {
		return r, fmt.Errorf("shipped: metrics.json: %w", err)
	}
	r.DFDCAUC, r.StyleGANAUC = m.Test.INT8["dfdc-faces"].AUC, m.Test.INT8["hardfake"].AUC
	v := m.Videos.Metrics[m.Videos.Rule]
	r.Videos, r.VideosRight = v.N, v.Confusion[0][0]+v.Confusion[1][1]
	if r.Name == "" || r.Released == "" || len(r.Backbones) == 0 || r.Head == "" || r.DFDCAUC == 0 {
		return r, fmt.Errorf("shipped: the card, sums or metrics lack the release's name, date, ids or AUC: %+v", r)
	}
	return r, nil
}

// Runs says whether backbone (an id as verdicts carry it) is this release's.
func (r Release) Runs(backbone string) bool {
	for _, b := range r.Backbones {
		if b == backbone {
			return true
		}
	}
	return false
}
