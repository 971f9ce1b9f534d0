// Package onnxpb holds the Go types of the ONNX protobuf schema (onnx.proto,
// copied from Debian's python3-onnx, ONNX's own file under the Apache 2.0
// licence), so that deepfaked can read and rewrite model graphs in Go
// (infer/quantize). The generated file is committed: building needs no protoc.
//
// To regenerate (protoc from Debian's protobuf-compiler; protoc-gen-go at the
// google.golang.org/protobuf version in go.mod):
//
//	go generate ./infer/onnxpb
package onnxpb

//go:generate go build -o protoc-gen-go.bin google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate protoc --plugin=protoc-gen-go=protoc-gen-go.bin --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/deepfaked/deepfaked/infer/onnxpb onnx.proto
//go:generate rm -f protoc-gen-go.bin
