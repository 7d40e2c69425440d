package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cyberark/conjur-swarm/internal/logsink"
)

// newLogger builds the process logger of a command. level is one of debug,
// info, warn, error; format is "json" (the default, for the Docker daemon's
// log) or "console" (for a terminal). Lines go to stderr. Components receive
// named children of it.
func newLogger(level, format string) (*zap.Logger, error) {
	enc, lvl, err := logEncoder(level, format)
	if err != nil {
		return nil, err
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl), zap.AddCaller()), nil
}

// newPluginLogger is newLogger with the output split for the Docker daemon,
// for `serve`: the daemon records a managed plugin's stdout as level=info
// and its stderr as level=error, so lines below error go to stdout and
// errors to stderr, and `level=error` in the daemon's log means an error.
// Each stream is a logsink.Writer: lines logged at once by concurrent
// GetSecrets share one write(2), and a line is still written before the
// Get it records is answered.
func newPluginLogger(level, format string) (*zap.Logger, error) {
	enc, lvl, err := logEncoder(level, format)
	if err != nil {
		return nil, err
	}
	low := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l < zapcore.ErrorLevel })
	high := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l >= zapcore.ErrorLevel })
	core := zapcore.NewTee(
		zapcore.NewCore(enc, logsink.New(os.Stdout, logsink.PipeAtomic), low),
		zapcore.NewCore(enc.Clone(), logsink.New(os.Stderr, logsink.PipeAtomic), high),
	)
	return zap.New(core, zap.AddCaller()), nil
}

// logEncoder is the encoder of format and the level of level, both as the
// settings name them.
func logEncoder(level, format string) (zapcore.Encoder, zapcore.Level, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, 0, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "", "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "ts"
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		return zapcore.NewJSONEncoder(cfg), lvl, nil
	case "console":
		return zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), lvl, nil
	}
	return nil, 0, fmt.Errorf("log format %q: want json or console", format)
}
