//go:build !tensorrt

package trt

// Built reports whether this binary was built with TensorRT (the `tensorrt` build tag).
func Built() bool { return false }

// defaultNative is the shim; without the tag there is none.
func defaultNative() (native, error) { return nil, ErrNotBuilt }

// HeaderVersion returns the TensorRT version the shim was compiled against.
func HeaderVersion() (Version, error) { return Version{}, ErrNotBuilt }

// LibraryVersion returns the version of the TensorRT library loaded in this process.
func LibraryVersion() (Version, error) { return Version{}, ErrNotBuilt }
