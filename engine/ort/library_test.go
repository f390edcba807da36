package ort

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

func TestFindLibraryMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", LibraryName)
	tests := []struct {
		name     string
		explicit string
		env      string
		from     string // how the error says the path was chosen
	}{
		{"explicit", missing, "", "Options.LibraryPath"},
		{"environment", "", missing, "$" + EnvLibrary},
		{"directory", t.TempDir(), "", "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLibrary, tc.env)
			_, err := FindLibrary(tc.explicit)
			if !errors.Is(err, backend.ErrUnavailable) {
				t.Fatalf("FindLibrary: %v, want ErrUnavailable", err)
			}
			for _, want := range []string{tc.from, "bash build/install-onnxruntime.sh",
				EnvLibrary, "ort: "} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// TestFindLibrarySearch builds fake repositories in a temporary directory and checks that
// the search walks up from the working directory to go.mod's directory, and no further.
func TestFindLibrarySearch(t *testing.T) {
	t.Setenv(EnvLibrary, "")
	root := t.TempDir()
	mkfile := func(parts ...string) string {
		p := filepath.Join(append([]string{root}, parts...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lib := mkfile("repo", ".deps", "onnxruntime", LibraryName)
	mkfile("repo", "go.mod")
	mkfile("repo", "nested", "go.mod")          // a module without the library, below repo
	mkfile(".deps", "onnxruntime", LibraryName) // above repo: must not be found from it
	mkfile("other", "go.mod")
	for _, d := range []string{"repo/engine/ort", "repo/nested/x", "other/a"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		dir  string
		want string // "" means not found
	}{
		{"repo", lib},
		{"repo/engine/ort", lib},
		{"repo/nested/x", ""},
		{"other/a", ""},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			t.Chdir(filepath.Join(root, tc.dir))
			got, err := FindLibrary("")
			if tc.want == "" {
				if err == nil {
					t.Fatalf("found %s, want not found", got)
				}
				if !errors.Is(err, backend.ErrUnavailable) {
					t.Fatalf("error %v does not wrap ErrUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameFile(got, tc.want) {
				t.Fatalf("found %s, want %s", got, tc.want)
			}
		})
	}
}

// TestOpenOtherLibraryRefused checks that once the library is loaded, an Open asking for a
// different one is refused instead of silently using the first.
func TestOpenOtherLibraryRefused(t *testing.T) {
	openAffine(t) // loads the realLib library
	other := filepath.Join(t.TempDir(), LibraryName)
	if err := os.WriteFile(other, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(affineModel, Options{LibraryPath: other})
	if err == nil {
		m.Close()
		t.Fatal("Open with a second library path succeeded")
	}
	if !strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("error %q does not say the library is already loaded", err)
	}
}

// TestOpenMissingLibrary runs in a fresh process (this test binary, re-executed), where no
// library is loaded yet: Open with $MEDLSAM_ORT_LIB naming a missing file must fail with
// ErrUnavailable and the install hint, and a later Open, once the variable names the realLib
// library, must succeed (a failed load is not remembered).
func TestOpenMissingLibrary(t *testing.T) {
	if os.Getenv("ORT_TEST_CHILD") == "1" {
		_, err := Open(affineModel, Options{})
		if !errors.Is(err, backend.ErrUnavailable) ||
			!strings.Contains(err.Error(), "build/install-onnxruntime.sh") {
			t.Fatalf("Open with a missing library: %v", err)
		}
		realLib := os.Getenv("ORT_TEST_REAL_LIB")
		if realLib == "" {
			return
		}
		t.Setenv(EnvLibrary, realLib)
		m, err := Open(affineModel, Options{})
		if err != nil {
			t.Fatalf("Open after the library appeared: %v", err)
		}
		m.Close()
		return
	}
	realLib, _ := FindLibrary("") // retried in the child when found
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenMissingLibrary$", "-test.v")
	cmd.Env = append(os.Environ(), "ORT_TEST_CHILD=1", "ORT_TEST_REAL_LIB="+realLib,
		EnvLibrary+"="+filepath.Join(t.TempDir(), LibraryName))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestOpenMissingLibrary") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if realLib == "" {
		t.Log("library absent: the retry after installing it was not exercised")
	}
}
