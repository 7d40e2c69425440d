package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newPluginLogger is newLogger's format and level for `serve`, with the
// output split for the Docker daemon: it records a managed plugin's stdout
// as level=info and its stderr as level=error, so lines below error go to
// stdout and errors to stderr, and `level=error` in the daemon's log means
// an error.
func newPluginLogger(level, format string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	var enc zapcore.Encoder
	switch format {
	case "", "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "ts"
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	low := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l < zapcore.ErrorLevel })
	high := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l >= zapcore.ErrorLevel })
	core := zapcore.NewTee(
		zapcore.NewCore(enc, zapcore.Lock(os.Stdout), low),
		zapcore.NewCore(enc.Clone(), zapcore.Lock(os.Stderr), high),
	)
	return zap.New(core, zap.AddCaller()), nil
}
