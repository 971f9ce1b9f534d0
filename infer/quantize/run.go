package quantize

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/deepfaked/deepfaked/infer/engine"
)

// RunOptions configure CalibrateModel.
type RunOptions struct {
	CalibrationOptions
	// Size is the square input side of the samples.
	Size int
	// Batch is the samples per ONNX Runtime run.
	Batch int
	// Equalize equalises channels (see equalize) before the ranges are
	// calibrated. It needs a second pass, so the samples are kept in memory
	// (3·Size² floats each: 192 KiB at 128 pixels).
	Equalize bool
}

// Progress is reported after each calibration batch; Pass is 1, or 2 for
// the pass on the equalised model.
type Progress struct{ Pass, Done, Total int }

// Calibration is what CalibrateModel found.
type Calibration struct {
	Float     *Float // the model to quantise: the float model, equalised if asked
	Ranges    map[string]Range
	Samples   int
	SetSHA256 string // of the preprocessed samples, in order
	Method    string // MethodName
	Equalized bool
}

// CalibrateModel runs every sample of src through f (ranges, and channel
// ranges for equalisation), then, with opts.Equalize, equalises f and
// calibrates the equalised model on the same samples.
func CalibrateModel(ctx context.Context, eng *engine.Engine, f *Float, src Source, opts RunOptions, progress func(Progress)) (*Calibration, error) {
	if opts.Batch < 1 || opts.Size < 1 {
		return nil, fmt.Errorf("calibrate %s: batch %d, size %d: want both at least 1", f.Path, opts.Batch, opts.Size)
	}
	first := opts.CalibrationOptions
	if opts.Equalize {
		first.Method = MethodMinMax // pass 1 only needs the channel ranges
	}
	c, err := NewCalibrator(eng, f, opts.Size, first)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	per := 3 * opts.Size * opts.Size
	buf := make([]float32, opts.Batch*per)
	var kept []float32
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		if err := c.Add(buf, n); err != nil {
			return err
		}
		if opts.Equalize {
			kept = append(kept, buf[:n*per]...)
		}
		n = 0
		if progress != nil {
			progress(Progress{Pass: 1, Done: c.Samples(), Total: max(src.Total(), c.Samples())})
		}
		return nil
	}
	for {
		err := src.Next(ctx, buf[n*per:(n+1)*per])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if n++; n == opts.Batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if c.Samples() == 0 {
		return nil, fmt.Errorf("calibrate %s: the calibration source gave no samples", f.Path)
	}
	out := &Calibration{Float: f, Samples: c.Samples(), SetSHA256: c.SetSHA256(), Method: MethodName(opts.CalibrationOptions)}
	if !opts.Equalize {
		out.Ranges, err = c.Ranges()
		return out, err
	}
	if out.Float, err = Equalized(f, c.ChannelRanges()); err != nil {
		return nil, err
	}
	out.Equalized = true
	c2, err := NewCalibrator(eng, out.Float, opts.Size, opts.CalibrationOptions)
	if err != nil {
		return nil, err
	}
	defer c2.Close()
	total := len(kept) / per
	for i := 0; i < total; i += opts.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(opts.Batch, total-i)
		if err := c2.Add(kept[i*per:(i+k)*per], k); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(Progress{Pass: 2, Done: i + k, Total: total})
		}
	}
	out.Ranges, err = c2.Ranges()
	return out, err
}
