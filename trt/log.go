package trt

import (
	"context"
	"log/slog"
)

// TensorRT log severities (nvinfer1::ILogger::Severity).
const (
	sevInternalError = 0
	sevError         = 1
	sevWarning       = 2
	sevInfo          = 3
	sevVerbose       = 4
)

// slogLevel maps a TensorRT severity to a slog level. TensorRT's info records (engine
// loading details) are debug-level for this program; verbose ones sit below debug.
func slogLevel(severity int32) slog.Level {
	switch severity {
	case sevInternalError, sevError:
		return slog.LevelError
	case sevWarning:
		return slog.LevelWarn
	case sevInfo:
		return slog.LevelDebug
	}
	return slog.LevelDebug - 4
}

func severityName(severity int32) string {
	switch severity {
	case sevInternalError:
		return "internal_error"
	case sevError:
		return "error"
	case sevWarning:
		return "warning"
	case sevInfo:
		return "info"
	case sevVerbose:
		return "verbose"
	}
	return "unknown"
}

// logNative forwards one TensorRT log record to slog's default logger. The cgo callback calls
// it from whatever thread TensorRT logs on; slog handlers are safe for concurrent use.
func logNative(severity int32, msg string) {
	l := slog.Default()
	lvl := slogLevel(severity)
	if !l.Enabled(context.Background(), lvl) {
		return
	}
	l.Log(context.Background(), lvl, "tensorrt", "severity", severityName(severity), "text", msg)
}
