// Package spec is the contract between deepfaked's model files and the code
// that makes or runs them: the deepfaked.* metadata keys that
// tools/export_model.py and head training write, what a head's output means
// (PFake) and how the decision threshold is chosen (DecisionThreshold). It is
// pure Go, so the training side can use it without ONNX Runtime.
package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metadata keys written by tools/export_model.py and by head training.
const (
	KeyFormatVersion = "deepfaked.format_version"
	KeyRole          = "deepfaked.role"
	KeyInputSize     = "deepfaked.input_size"
	KeyMean          = "deepfaked.mean"
	KeyStd           = "deepfaked.std"
	KeyColorOrder    = "deepfaked.color_order"
	KeyClassNames    = "deepfaked.class_names"
	KeyFeatureShape  = "deepfaked.feature_shape"
	KeyWeights       = "deepfaked.weights"
	KeyThreshold     = "deepfaked.threshold"
	// Written by head training; kept in Metadata.Extra.
	KeyTrainedAt      = "deepfaked.trained_at"
	KeyTrainSetSHA256 = "deepfaked.train_set_sha256"
	KeyMetrics        = "deepfaked.metrics"
	// Written by `deepfaked quantize` on an INT8 backbone; kept in Metadata.Extra.
	KeyQuantization         = "deepfaked.quantization"           // QuantizationINT8QDQ
	KeyQuantizationMethod   = "deepfaked.quantization_method"    // calibration: minmax, percentile:99.999
	KeyQuantizationWeights  = "deepfaked.quantization_weights"   // per-channel or per-tensor, int8 or int7 (reduce range)
	KeyCalibrationSetSHA256 = "deepfaked.calibration_set_sha256" // of the preprocessed samples, in order
	KeyCalibrationSamples   = "deepfaked.calibration_samples"
	KeySourceModelSHA256    = "deepfaked.source_model_sha256" // the float model quantised
	KeyQuantizedAt          = "deepfaked.quantized_at"        // RFC 3339, UTC
)

// QuantizationINT8QDQ is KeyQuantization's value for a static INT8 model in
// QDQ form: int8 weights (symmetric) and activations (asymmetric), int32 biases.
const QuantizationINT8QDQ = "int8-qdq-s8s8"

// Precisions a backbone runs at, as verdicts report them (Metadata.Precision).
const (
	PrecisionFP32 = "fp32"
	PrecisionINT8 = "int8"
)

// Precision is PrecisionINT8 for a model deepfaked quantize wrote, else
// PrecisionFP32.
func (m Metadata) Precision() string {
	if m.Extra[KeyQuantization] == QuantizationINT8QDQ {
		return PrecisionINT8
	}
	return PrecisionFP32
}

// FormatVersion is the metadata format this package understands.
const FormatVersion = "1"

// Roles a model file can have.
const (
	RoleBackbone = "backbone"
	RoleHead     = "head"
)

const metaPrefix = "deepfaked."

// Metadata describes how a model expects its input and what its output means.
type Metadata struct {
	Role      string // "backbone", "head", or "" when not stated
	InputSize int    // face crop side S in pixels
	// Mean and Std normalise x/255 per input channel, in the model's ColorOrder.
	Mean, Std    [3]float32
	ColorOrder   string // "RGB" or "BGR": the order of the input's channel planes
	ClassNames   []string
	FeatureShape [3]int // backbone output per face: channels, height, width
	Weights      string // where the weights came from, e.g. "random:seed=0"
	// Threshold is the decision threshold calibrated by training, if stored.
	Threshold Threshold
	// Extra holds every other metadata entry, e.g. training metrics.
	Extra map[string]string
	// Defaulted says the model had no deepfaked.* metadata at all, so every
	// field above is the default for a torchvision MnasNet at 128 pixels.
	Defaulted bool
}

// DefaultMetadata describes a torchvision MnasNet export without our metadata:
// ImageNet normalisation, RGB, 128×128 input, 1280×4×4 features.
func DefaultMetadata() Metadata {
	return Metadata{
		InputSize:    128,
		Mean:         [3]float32{0.485, 0.456, 0.406},
		Std:          [3]float32{0.229, 0.224, 0.225},
		ColorOrder:   "RGB",
		ClassNames:   []string{"real", "fake"},
		FeatureShape: [3]int{1280, 4, 4},
		Extra:        map[string]string{},
	}
}

// FeatureSize is the number of floats per face in the backbone's output.
func (m Metadata) FeatureSize() int { return m.FeatureShape[0] * m.FeatureShape[1] * m.FeatureShape[2] }

// ParseMetadata reads a model's metadata_props. Keys that are present must be
// well formed; absent keys keep their defaults (FeatureShape follows InputSize
// at MnasNet's stride of 32, rounding up). With no deepfaked.* key at all the result is
// DefaultMetadata with Defaulted set, and the caller should warn.
func ParseMetadata(props map[string]string) (Metadata, error) {
	m := DefaultMetadata()
	ours := false
	for k, v := range props {
		if strings.HasPrefix(k, metaPrefix) {
			ours = true
		}
		switch k {
		case KeyFormatVersion, KeyRole, KeyInputSize, KeyMean, KeyStd, KeyColorOrder,
			KeyClassNames, KeyFeatureShape, KeyWeights, KeyThreshold:
		default:
			m.Extra[k] = v
		}
	}
	if !ours {
		m.Defaulted = true
		return m, nil
	}
	if v, ok := props[KeyFormatVersion]; ok && v != FormatVersion {
		return m, fmt.Errorf("metadata %s=%q: this build understands format %s only", KeyFormatVersion, v, FormatVersion)
	}
	if v, ok := props[KeyRole]; ok {
		if v != RoleBackbone && v != RoleHead {
			return m, fmt.Errorf("metadata %s=%q: want %q or %q", KeyRole, v, RoleBackbone, RoleHead)
		}
		m.Role = v
	}
	if v, ok := props[KeyInputSize]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 32 || n > 4096 {
			return m, fmt.Errorf("metadata %s=%q: want a whole number of pixels from 32 to 4096", KeyInputSize, v)
		}
		m.InputSize = n
		m.FeatureShape = [3]int{1280, (n + 31) / 32, (n + 31) / 32}
	}
	for _, f := range []struct {
		key string
		dst *[3]float32
	}{{KeyMean, &m.Mean}, {KeyStd, &m.Std}} {
		v, ok := props[f.key]
		if !ok {
			continue
		}
		parts := strings.Split(v, ",")
		if len(parts) != 3 {
			return m, fmt.Errorf("metadata %s=%q: want 3 comma-separated numbers, got %d", f.key, v, len(parts))
		}
		for i, p := range parts {
			x, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return m, fmt.Errorf("metadata %s=%q: %q is not a finite number", f.key, v, p)
			}
			if f.key == KeyStd && x <= 0 {
				return m, fmt.Errorf("metadata %s=%q: a standard deviation must be above 0", f.key, v)
			}
			f.dst[i] = float32(x)
		}
	}
	if v, ok := props[KeyColorOrder]; ok {
		if v != "RGB" && v != "BGR" {
			return m, fmt.Errorf("metadata %s=%q: want RGB or BGR", KeyColorOrder, v)
		}
		m.ColorOrder = v
	}
	if v, ok := props[KeyClassNames]; ok {
		names := strings.Split(v, ",")
		if len(names) != 2 {
			return m, fmt.Errorf("metadata %s=%q: want 2 comma-separated names (real, fake), got %d", KeyClassNames, v, len(names))
		}
		for i := range names {
			names[i] = strings.TrimSpace(names[i])
			if names[i] == "" {
				return m, fmt.Errorf("metadata %s=%q: empty class name", KeyClassNames, v)
			}
		}
		if names[0] == names[1] {
			return m, fmt.Errorf("metadata %s=%q: class names must differ", KeyClassNames, v)
		}
		m.ClassNames = names
	}
	if v, ok := props[KeyFeatureShape]; ok {
		parts := strings.Split(v, ",")
		if len(parts) != 3 {
			return m, fmt.Errorf("metadata %s=%q: want 3 comma-separated sizes (channels,height,width), got %d", KeyFeatureShape, v, len(parts))
		}
		for i, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 || n > 1<<16 {
				return m, fmt.Errorf("metadata %s=%q: %q is not a size from 1 to 65536", KeyFeatureShape, v, p)
			}
			m.FeatureShape[i] = n
		}
	}
	m.Weights = props[KeyWeights]
	if v, ok := props[KeyThreshold]; ok {
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(x >= 0 && x <= 1) {
			return m, fmt.Errorf("metadata %s=%q: want a probability from 0 to 1", KeyThreshold, v)
		}
		m.Threshold = ThresholdOf(x)
	}
	return m, nil
}
