package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{200, 200, 200, 255}
	blue  = color.RGBA{31, 119, 180, 255}
)

// canvas is an RGBA picture with text in basicfont scaled up for legibility.
type canvas struct{ *image.RGBA }

func newCanvas(w, h int) canvas {
	c := canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	draw.Draw(c, c.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	return c
}

// text draws s centred on (cx, cy) at an integer scale of the 7×13 font;
// vertical text reads bottom to top.
func (c canvas) text(s string, cx, cy, scale int, col color.Color, vertical bool) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, s).Ceil()
	small := image.NewRGBA(image.Rect(0, 0, w, 13))
	d := font.Drawer{Dst: small, Src: image.NewUniform(col), Face: face, Dot: fixed.P(0, 10)}
	d.DrawString(s)
	if vertical {
		rot := image.NewRGBA(image.Rect(0, 0, 13, w))
		for y := range 13 {
			for x := range w {
				rot.Set(y, w-1-x, small.At(x, y))
			}
		}
		small = rot
	}
	b := small.Bounds()
	dst := image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale).Add(image.Pt(cx-b.Dx()*scale/2, cy-b.Dy()*scale/2))
	draw.NearestNeighbor.Scale(c, dst, small, b, draw.Over, nil)
}

func (c canvas) rect(r image.Rectangle, col color.Color) {
	draw.Draw(c, r, image.NewUniform(col), image.Point{}, draw.Src)
}

// line draws a width-w segment; dash > 0 leaves gaps of that many pixels.
func (c canvas) line(x0, y0, x1, y1 float64, w int, col color.Color, dash int) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		if dash > 0 && (i/dash)%2 == 1 {
			continue
		}
		t := float64(i) / float64(n)
		x, y := int(math.Round(x0+t*(x1-x0))), int(math.Round(y0+t*(y1-y0)))
		c.rect(image.Rect(x-w/2, y-w/2, x-w/2+w, y-w/2+w), col)
	}
}

func (c canvas) save(path string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, c); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return atomicfile.Write(path, buf.Bytes(), 0o644)
}

// WriteConfusionPNG draws the confusion matrix of m: counts and row shares in
// each cell, shaded by the share of the actual class, with the threshold,
// accuracy and F1 in the title.
func WriteConfusionPNG(path string, m Metrics) error {
	const size, left, top, cell = 640, 150, 110, 220
	c := newCanvas(size, size)
	c.text(fmt.Sprintf("Confusion at threshold %.3g", m.Threshold), size/2, 28, 2, black, false)
	c.text(fmt.Sprintf("n=%d  accuracy %.3f  F1 %.3f", m.N, m.Accuracy, m.F1), size/2, 62, 2, black, false)
	names := [2]string{"real", "fake"}
	for a := range 2 {
		total := m.Confusion[a][0] + m.Confusion[a][1]
		for p := range 2 {
			share := 0.0
			if total > 0 {
				share = float64(m.Confusion[a][p]) / float64(total)
			}
			fill := color.RGBA{uint8(255 - share*(255-31)), uint8(255 - share*(255-119)), uint8(255 - share*(255-180)), 255}
			x, y := left+p*cell, top+a*cell
			c.rect(image.Rect(x, y, x+cell, y+cell), fill)
			ink := color.Color(black)
			if share > 0.6 {
				ink = white
			}
			c.text(fmt.Sprint(m.Confusion[a][p]), x+cell/2, y+cell/2-20, 4, ink, false)
			c.text(fmt.Sprintf("%.1f%%", 100*share), x+cell/2, y+cell/2+35, 2, ink, false)
		}
		c.text(names[a], left+a*cell+cell/2, top+2*cell+22, 2, black, false)
		c.text(names[a], left-25, top+a*cell+cell/2, 2, black, true)
	}
	for k := range 3 {
		c.line(float64(left), float64(top+k*cell), float64(left+2*cell), float64(top+k*cell), 2, black, 0)
		c.line(float64(left+k*cell), float64(top), float64(left+k*cell), float64(top+2*cell), 2, black, 0)
	}
	c.text("predicted", left+cell, top+2*cell+60, 2, black, false)
	c.text("actual", left-70, top+cell, 2, black, true)
	return c.save(path)
}

// WriteROCPNG draws the ROC curve of fake-probability scores, with its AUC in
// the title and the chance diagonal dashed.
func WriteROCPNG(path string, labels []int, scores []float64) error {
	if len(labels) != len(scores) {
		return fmt.Errorf("roc %s: %d labels but %d scores", path, len(labels), len(scores))
	}
	const size, left, top, plot = 640, 100, 70, 480
	c := newCanvas(size, size)
	auc := AUC(labels, scores)
	title := fmt.Sprintf("ROC  AUC %.3f  (n=%d)", auc, len(labels))
	if math.IsNaN(auc) {
		title = fmt.Sprintf("ROC  AUC undefined: one class only (n=%d)", len(labels))
	}
	c.text(title, size/2, 30, 2, black, false)
	px := func(v float64) float64 { return left + v*plot }
	py := func(v float64) float64 { return top + (1-v)*plot }
	for k := 0; k <= 5; k++ {
		v := float64(k) / 5
		c.line(px(v), py(0), px(v), py(1), 1, grey, 0)
		c.line(px(0), py(v), px(1), py(v), 1, grey, 0)
		c.text(fmt.Sprintf("%.1f", v), int(px(v)), int(py(0))+18, 1, black, false)
		c.text(fmt.Sprintf("%.1f", v), int(px(0))-18, int(py(v)), 1, black, false)
	}
	c.line(px(0), py(0), px(1), py(1), 1, black, 6)
	c.line(px(0), py(0), px(1), py(0), 2, black, 0)
	c.line(px(0), py(0), px(0), py(1), 2, black, 0)
	if !math.IsNaN(auc) {
		pts := ROC(labels, scores)
		for i := 1; i < len(pts); i++ {
			c.line(px(pts[i-1].FPR), py(pts[i-1].TPR), px(pts[i].FPR), py(pts[i].TPR), 3, blue, 0)
		}
	}
	c.text("false positive rate (real called fake)", left+plot/2, top+plot+45, 2, black, false)
	c.text("true positive rate (fake caught)", 30, top+plot/2, 2, black, true)
	return c.save(path)
}
