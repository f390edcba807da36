package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
)

// Model names of the SAM manifests (engine/backend Manifest.Model) and the file suffixes
// of the three parts.
const (
	samDefault       = "sam"
	samEncoder       = "sam-encoder"
	samDecoder       = "sam-decoder"
	samDecoderPublic = "sam-decoder-public"

	suffixEncoder       = "-encoder.onnx"
	suffixDecoder       = "-decoder.onnx"
	suffixDecoderPublic = "-decoder-public.onnx"
)

// segmentConfig fills the defaults of the segmenter's settings from the localiser's.
func segmentConfig(c segment.Config, lc localize.Config) segment.Config {
	if c.Logger == nil {
		c.Logger = lc.Logger
	}
	if c.Kernels == nil {
		if k, ok := lc.Kernels.(segment.Kernels); ok {
			c.Kernels = k
		}
	}
	return c
}

// OpenSAM opens the SAM encoder and decoder now (see Options.SAMName) instead of at the
// first Segment call, so that a missing or mismatched model is reported at start-up. It
// does nothing when they are open already, or when SAM runs in the GPU worker
// (Options.Worker with SAM engines). The Engine owns the models: Close closes them.
func (e *Engine) OpenSAM() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.dw != nil && e.dw.work == gpu.WorkSegment {
		return nil // SAM runs on the worker's engines; there is nothing to open here
	}
	_, err := e.samLocked()
	return err
}

// samLocked returns the SAM models, opening them on first use; e.mu is held. A failed
// attempt leaves nothing open, so a later call tries again.
func (e *Engine) samLocked() (segment.Models, error) {
	if e.sam != nil {
		return *e.sam, nil
	}
	name, err := findSAM(e.dir, e.samName)
	if err != nil {
		return segment.Models{}, err
	}
	encPath := filepath.Join(e.dir, name+suffixEncoder)
	enc, err := openSAMPart(e.samOpen, encPath, samEncoder)
	if err != nil {
		return segment.Models{}, err
	}
	decPath, decKind := filepath.Join(e.dir, name+suffixDecoder), samDecoder
	if _, err := os.Stat(decPath); errors.Is(err, os.ErrNotExist) {
		decPath, decKind = filepath.Join(e.dir, name+suffixDecoderPublic), samDecoderPublic
		if _, err := os.Stat(decPath); errors.Is(err, os.ErrNotExist) {
			enc.Close()
			return segment.Models{}, fmt.Errorf("engine: SAM model %q in %s has no decoder "+
				"(%s%s or %s%s)", name, e.dir, name, suffixDecoder, name, suffixDecoderPublic)
		}
	}
	dec, err := openSAMPart(e.samOpen, decPath, decKind)
	if err != nil {
		enc.Close()
		return segment.Models{}, err
	}
	if _, err := segment.DetectLayout(dec); err != nil {
		dec.Close()
		enc.Close()
		return segment.Models{}, fmt.Errorf("engine: %s: %w", decPath, err)
	}
	e.models = append(e.models, enc, dec)
	e.sam = &segment.Models{Encoder: enc, Decoder: dec}
	e.segCfg.Logger.Info("engine: SAM opened", "encoder", encPath, "decoder", decPath)
	return *e.sam, nil
}

// openSAMPart opens one SAM part with open after checking its manifest: the kind of model
// it declares, and once open, the tensors the model really has.
func openSAMPart(open Opener, path, kind string) (backend.Model, error) {
	m, man, err := openChecked(open, path, kind)
	if err != nil {
		return nil, err
	}
	if err := man.Check(path, m); err != nil {
		m.Close()
		return nil, fmt.Errorf("engine: %s against its manifest: %w", path, err)
	}
	return m, nil
}

// errNoSAM is findSAM's error for a directory without a SAM export.
var errNoSAM = errors.New("holds no SAM model")

// findSAM returns the base name of the SAM model to open in dir.
func findSAM(dir, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if _, err := os.Stat(filepath.Join(dir, samDefault+suffixEncoder)); err == nil {
		return samDefault, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"+suffixEncoder))
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	var found []string
	for _, f := range files {
		man, err := backend.LoadManifest(f)
		if err == nil && man.Model == samEncoder {
			found = append(found, strings.TrimSuffix(filepath.Base(f), suffixEncoder))
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("engine: %s %w (%s%s, or NAME%s with a manifest of model "+
			"%q); export one or give Options.SAMName", dir, errNoSAM, samDefault,
			suffixEncoder, suffixEncoder, samEncoder)
	default:
		slices.Sort(found)
		return "", fmt.Errorf("engine: %s holds several SAM models (%s); give "+
			"Options.SAMName", dir, strings.Join(found, ", "))
	}
}
