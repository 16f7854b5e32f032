// Command identityd runs identity-service: `identityd serve | migrate |
// keys rotate | bootstrap --email E --password P` (CONTRACT.md §1).
// Configuration comes from the environment; a bad value exits with status 2
// and one line naming the variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ghasi-ehealth/identity-service/core/bootstrap"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

const usage = `usage: identityd <command>

commands:
  serve                                   run the service (migrates first unless IDENTITY_MIGRATE=false)
  migrate                                 apply database migrations and exit
  keys rotate                             promote the next signing key now
  bootstrap --email E --password P        create the platform tenant and a SUPER_ADMIN if none exists

Configuration is read from IDENTITY_* environment variables; see README.md.
`

// Exit statuses: 2 for usage and configuration errors, 1 for failures.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without process globals, so tests can drive every command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "identityd: %v\n", err)
		return exitUsage
	}
	logger := telemetry.NewLogger(stderr, logLevel(cfg.LogLevel))

	switch args[0] {
	case "serve":
		err = serve(ctx, cfg, logger)
	case "migrate":
		err = migrate(ctx, cfg, logger, stdout)
	case "keys":
		if len(args) != 2 || args[1] != "rotate" {
			fmt.Fprint(stderr, "identityd: unknown keys command; want `identityd keys rotate`\n")
			return exitUsage
		}
		err = rotateKeys(ctx, cfg, logger, stdout)
	case "bootstrap":
		fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
		fs.SetOutput(stderr)
		email := fs.String("email", cfg.BootstrapEmail, "SUPER_ADMIN email")
		pass := fs.String("password", cfg.BootstrapPassword, "SUPER_ADMIN password (8-128 characters)")
		if fs.Parse(args[1:]) != nil || *email == "" || *pass == "" {
			fmt.Fprint(stderr, "identityd: bootstrap needs --email and --password\n")
			return exitUsage
		}
		err = runBootstrap(ctx, cfg, logger, stdout, *email, *pass)
	default:
		fmt.Fprintf(stderr, "identityd: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "identityd: %v\n", err)
		var ce *ConfigError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated by LoadConfig
	return l
}

func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	m := NewMain(cfg, logger)
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		return err
	}
	return m.Run(ctx)
}

func migrate(ctx context.Context, cfg Config, logger *slog.Logger, stdout io.Writer) error {
	cfg.Migrate = true
	m := NewMain(cfg, logger)
	defer m.Close()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied; the database is up to date")
	return nil
}

func rotateKeys(ctx context.Context, cfg Config, logger *slog.Logger, stdout io.Writer) error {
	m := NewMain(cfg, logger)
	defer m.Close()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if err := m.openKeys(ctx); err != nil {
		return err
	}
	k, err := m.keys.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated: active signing key is now %s (running instances pick it up within a minute)\n", k.KID)
	return nil
}

func runBootstrap(ctx context.Context, cfg Config, logger *slog.Logger, stdout io.Writer, email, pass string) error {
	m := NewMain(cfg, logger)
	defer m.Close()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	hasher := password.NewHasher(cfg.Argon2Params, cfg.Argon2MaxConcurrency, password.DefaultAcquireTimeout)
	res, err := bootstrap.NewService(m.directory, hasher, m.clock, logger).EnsureSuperAdmin(ctx, email, pass)
	if err != nil {
		return err
	}
	if !res.Created {
		fmt.Fprintln(stdout, "a SUPER_ADMIN already exists; nothing to do")
		return nil
	}
	fmt.Fprintf(stdout, "created SUPER_ADMIN %s in tenant %s (platform)\n", res.UserID, res.TenantID)
	return nil
}
