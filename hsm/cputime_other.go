//go:build !linux

package hsm

// threadCPU is not measured outside Linux: SignCPU stays zero.
func threadCPU() int64 { return 0 }
