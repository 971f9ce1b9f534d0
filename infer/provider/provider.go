// Package provider names the ONNX Runtime execution providers that
// model.providers accepts. It is pure Go so that the config can check the
// names without pulling ONNX Runtime in; package engine enables them.
package provider

// Provider names, as written in model.providers.
const (
	TensorRT = "tensorrt"
	CUDA     = "cuda"
	CPU      = "cpu"
)

// Known lists the provider names in their usual order of preference.
func Known() []string { return []string{TensorRT, CUDA, CPU} }
