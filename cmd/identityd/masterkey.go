package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// loadMasterKey returns the configured master key or, for development, the
// one in path, generating it there (mode 0600) on first start. A production
// deployment sets IDENTITY_MASTER_KEY; the file fallback logs a warning.
func loadMasterKey(cfg Config, logger *slog.Logger) ([]byte, error) {
	if cfg.MasterKey != nil {
		return cfg.MasterKey, nil
	}
	raw, err := os.ReadFile(cfg.MasterKeyFile)
	switch {
	case err == nil:
		key, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil || len(key) != 32 {
			return nil, fmt.Errorf("%s: must hold the base64 encoding of exactly 32 bytes", cfg.MasterKeyFile)
		}
		logger.Warn("using the development master key file; set IDENTITY_MASTER_KEY in production", "path", cfg.MasterKeyFile)
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read master key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.MasterKeyFile), 0o700); err != nil {
		return nil, fmt.Errorf("create master key directory: %w", err)
	}
	// O_EXCL: two processes starting at once must not overwrite each other's key.
	f, err := os.OpenFile(cfg.MasterKeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadMasterKey(cfg, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("write master key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, fmt.Errorf("write master key: %w", err)
	}
	logger.Warn("generated a development master key; set IDENTITY_MASTER_KEY in production and keep it safe",
		"path", cfg.MasterKeyFile)
	return key, nil
}
