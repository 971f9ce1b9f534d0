package quantize

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/deepfaked/deepfaked/infer/spec"
)

// Info describes a quantisation for the output's metadata.
type Info struct {
	Method        string // as calibrated, e.g. "minmax" or "percentile:99.999"
	Equalized     bool   // channels were equalised before calibrating (Calibration.Equalized)
	Options       Options
	SetSHA256     string // Calibrator.SetSHA256
	Samples       int
	SourceSHA256  string // Float.SHA256
	QuantizedAt   time.Time
	Backbone      spec.Metadata // the float backbone's metadata as loaded
	FloatMetadata map[string]string
}

// MetadataFor is the output's metadata: the float model's deepfaked.* keys
// (or, for a model without any, the defaults it was loaded and calibrated
// with, so the INT8 file says how it must be fed) and the quantisation keys.
func MetadataFor(in Info) map[string]string {
	out := map[string]string{}
	ours := false
	for k, v := range in.FloatMetadata {
		if strings.HasPrefix(k, "deepfaked.") {
			ours = true
		}
		out[k] = v
	}
	if !ours {
		m := in.Backbone
		f32 := func(v [3]float32) string {
			return fmt.Sprintf("%s,%s,%s", strconv.FormatFloat(float64(v[0]), 'g', -1, 32),
				strconv.FormatFloat(float64(v[1]), 'g', -1, 32), strconv.FormatFloat(float64(v[2]), 'g', -1, 32))
		}
		out[spec.KeyFormatVersion] = spec.FormatVersion
		out[spec.KeyRole] = spec.RoleBackbone
		out[spec.KeyInputSize] = strconv.Itoa(m.InputSize)
		out[spec.KeyMean] = f32(m.Mean)
		out[spec.KeyStd] = f32(m.Std)
		out[spec.KeyColorOrder] = m.ColorOrder
		out[spec.KeyClassNames] = strings.Join(m.ClassNames, ",")
		out[spec.KeyFeatureShape] = fmt.Sprintf("%d,%d,%d", m.FeatureShape[0], m.FeatureShape[1], m.FeatureShape[2])
	}
	weights := "per-channel"
	if in.Options.PerTensorWeights {
		weights = "per-tensor"
	}
	if in.Equalized {
		weights += " equalised"
	}
	if in.Options.ReduceRange {
		weights += " int7 (reduce range)"
	} else {
		weights += " int8"
	}
	out[spec.KeyQuantization] = spec.QuantizationINT8QDQ
	out[spec.KeyQuantizationMethod] = in.Method
	out[spec.KeyQuantizationWeights] = weights
	out[spec.KeyCalibrationSetSHA256] = in.SetSHA256
	out[spec.KeyCalibrationSamples] = strconv.Itoa(in.Samples)
	out[spec.KeySourceModelSHA256] = in.SourceSHA256
	out[spec.KeyQuantizedAt] = in.QuantizedAt.UTC().Format(time.RFC3339)
	return out
}

// MethodName is the calibration method as recorded: "minmax" or "percentile:<p>".
func MethodName(o CalibrationOptions) string {
	if o.Method == MethodPercentile {
		return MethodPercentile + ":" + strconv.FormatFloat(o.Percentile, 'g', -1, 64)
	}
	return o.Method
}

// ReduceRangeAdvice says whether this CPU wants 7-bit weights, and why. On
// x86-64 without VNNI, ONNX Runtime's int8 kernels multiply with VPMADDUBSW,
// whose pairwise int16 sums can saturate with 8-bit weights (255·127·2 >
// 32767); 7-bit weights cannot. With AVX-512 VNNI or AVX-VNNI (VPDPBUSD sums
// into int32) and on ARM (SDOT/SMMLA), full 8-bit weights are exact.
func ReduceRangeAdvice() (bool, string) {
	switch {
	case runtime.GOARCH != "amd64":
		return false, runtime.GOARCH + ": int8 dot products sum into int32, no saturation"
	case cpu.X86.HasAVX512VNNI:
		return false, "x86-64 with AVX-512 VNNI: int8 dot products sum into int32, no saturation"
	case cpu.X86.HasAVXVNNI:
		return false, "x86-64 with AVX-VNNI: int8 dot products sum into int32, no saturation"
	default:
		return true, "x86-64 without VNNI: VPMADDUBSW's int16 sums can saturate with 8-bit weights, so weights use 7 bits"
	}
}

// UnsignedActivationsAdvice says whether activations should be uint8 on this
// machine, and why. ONNX Runtime's x86-64 kernels compute U8S8: it rewrites
// an int8 Q→DQ pair to uint8 only where the quantised tensor has one reader,
// so in S8S8 form every residual block's tensors (read by a Conv and an Add)
// stay in float (15 of MnasNet's 52 Convs and all 10 Adds, measured with ONNX
// Runtime 1.30). Elsewhere (ARM) S8S8 runs as int8 directly.
func UnsignedActivationsAdvice() (bool, string) {
	if runtime.GOARCH == "amd64" {
		return true, "x86-64: ONNX Runtime computes U8S8, and fuses every Conv and Add only with uint8 activations"
	}
	return false, runtime.GOARCH + ": S8S8, ONNX Runtime's recommended QDQ form"
}
