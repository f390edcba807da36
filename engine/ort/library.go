package ort

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// EnvLibrary is the environment variable that names the ONNX Runtime shared library.
const EnvLibrary = "MEDLSAM_ORT_LIB"

// LibraryName is the file name of the ONNX Runtime shared library the backend loads.
const LibraryName = "libonnxruntime.so.1"

// depsDir is where build/install-onnxruntime.sh puts the library, relative to the repository.
var depsDir = filepath.Join(".deps", "onnxruntime")

const installHint = "install it with `bash build/install-onnxruntime.sh` " +
	"(from the repository root) or set " + EnvLibrary + " to the library's path"

// FindLibrary returns the path of the ONNX Runtime shared library. It takes explicit when
// that is not empty, else $MEDLSAM_ORT_LIB when set, else the first file that exists among
// <executable's dir>/../lib/libonnxruntime.so.1, <executable's dir>/libonnxruntime.so.1
// and .deps/onnxruntime/libonnxruntime.so.1 in the current directory or any directory above
// it, up to the one that holds go.mod (so that tests and `go run` inside the repository
// find what the installer put there). A path that names no file, or no candidate found, is
// an error wrapping backend.ErrUnavailable that says how to install the library.
func FindLibrary(explicit string) (string, error) {
	if explicit != "" {
		return checkLibrary(explicit, "Options.LibraryPath")
	}
	if p := os.Getenv(EnvLibrary); p != "" {
		return checkLibrary(p, "$"+EnvLibrary)
	}
	cands := libraryCandidates()
	for _, c := range cands {
		if isFile(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("ort: ONNX Runtime library %s not found (looked in %s): %w; %s",
		LibraryName, strings.Join(cands, ", "), backend.ErrUnavailable, installHint)
}

func checkLibrary(path, from string) (string, error) {
	st, err := os.Stat(path)
	if err == nil && st.Mode().IsRegular() {
		return path, nil
	}
	why := "is not a regular file"
	if err != nil {
		why = "does not exist"
		if !errors.Is(err, fs.ErrNotExist) {
			why = err.Error()
		}
	}
	return "", fmt.Errorf("ort: ONNX Runtime library %s (from %s) %s: %w; %s",
		path, from, why, backend.ErrUnavailable, installHint)
}

// libraryCandidates lists the default places FindLibrary searches, in order.
func libraryCandidates() []string {
	var cands []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		cands = append(cands,
			filepath.Join(dir, "..", "lib", LibraryName),
			filepath.Join(dir, LibraryName))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; {
			cands = append(cands, filepath.Join(dir, depsDir, LibraryName))
			if isFile(filepath.Join(dir, "go.mod")) {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return cands
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// env is the process-wide ONNX Runtime environment. lib is the library it was initialised
// from; empty until an initialisation succeeds, so that a failed one (library missing) can
// be retried after the user installs it.
var env struct {
	mu  sync.Mutex
	lib string
}

// initEnvironment loads the shared library and creates ONNX Runtime's environment, once
// per process. A later call asking for another library than the loaded one is an error.
func initEnvironment(explicit string) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.lib != "" {
		if explicit != "" && !sameFile(explicit, env.lib) {
			return fmt.Errorf("ort: ONNX Runtime is already loaded from %s in this process; "+
				"cannot also load %s", env.lib, explicit)
		}
		return nil
	}
	if onnxruntime.IsInitialized() {
		// Someone else in the process set it up; use it as it is.
		env.lib = "(initialised outside package ort)"
		return nil
	}
	path, err := FindLibrary(explicit)
	if err != nil {
		return err
	}
	onnxruntime.SetSharedLibraryPath(path)
	// TODO(#3): bridge ONNX Runtime's log into slog; onnxruntime_go v1.27.0 exposes no custom
	// logger (CreateEnvWithCustomLogger), so errors only are logged, to stderr, by ORT itself.
	if err := onnxruntime.InitializeEnvironment(onnxruntime.WithLogLevelError()); err != nil {
		return fmt.Errorf("ort: loading ONNX Runtime from %s: %v: %w; %s",
			path, err, backend.ErrUnavailable, installHint)
	}
	env.lib = path
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return os.SameFile(sa, sb)
}

// Version loads the library as Open would (explicit path, or the search of FindLibrary)
// and returns the ONNX Runtime version string, e.g. "1.30.0".
func Version(libraryPath string) (string, error) {
	if err := initEnvironment(libraryPath); err != nil {
		return "", err
	}
	return onnxruntime.GetVersion(), nil
}
