package daemon

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/shipped"
)

// TestTrust: the shipped release is named with its card's figures; a head
// trained here, or a backbone of one's own, changes what the sentence says.
func TestTrust(t *testing.T) {
	r, err := shipped.Get()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		ids       contract.ModelIDs
		release   bool
		has, hasn string
	}{
		{"shipped", contract.ModelIDs{Backbone: r.Backbones[1], Head: r.Head}, true, "teach it this camera", "trained here"},
		{"own head", contract.ModelIDs{Backbone: r.Backbones[0], Head: "0123456789ab"}, true, "The head was trained here", "teach it this camera"},
		{"own backbone", contract.ModelIDs{Backbone: "0123456789ab", Head: r.Head}, false, "not one the project shipped", "DFDC"},
	} {
		rel, s := trust(tc.ids)
		if (rel != "") != tc.release || !strings.Contains(s, tc.has) || strings.Contains(s, tc.hasn) {
			t.Errorf("%s: %q, %q", tc.name, rel, s)
		}
		if tc.release && (!strings.Contains(rel, r.Name) || !strings.Contains(s, "0.79")) {
			t.Errorf("%s: %q does not name %s and its AUC", tc.name, rel+" "+s, r.Name)
		}
	}
}
