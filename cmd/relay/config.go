package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// envConfig is the binary's configuration, read from the environment: the
// library packages read none. Each field has the name of the relay.Config
// or worker.Config field it fills, so that an error naming Config.X is
// reported under X's variable (see envError). The README's configuration
// table lists every variable and default.
type envConfig struct {
	DatabaseURL string `env:"DATABASE_URL"`
	ListenAddr  string `env:"BELLHOP_LISTEN_ADDR, default=:8080"`
	Schema      string `env:"BELLHOP_SCHEMA, default=bellhop"`
	MaxConns    int32  `env:"BELLHOP_DB_MAX_CONNS, default=16"`
	OpsAddr     string `env:"BELLHOP_OPS_ADDR"`
	TLSCertFile string `env:"BELLHOP_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"BELLHOP_TLS_KEY_FILE"`
	// PprofAddr, when set, serves net/http/pprof there (keep it private).
	PprofAddr string `env:"BELLHOP_PPROF_ADDR"`

	JWTSecret        string        `env:"BELLHOP_JWT_SECRET"`
	JWTPublicKeyFile string        `env:"BELLHOP_JWT_PUBLIC_KEY_FILE"`
	JWKSURL          string        `env:"BELLHOP_JWKS_URL"`
	JWTIssuer        string        `env:"BELLHOP_JWT_ISSUER"`
	JWTAudience      string        `env:"BELLHOP_JWT_AUDIENCE"`
	JWTMaxLifetime   time.Duration `env:"BELLHOP_JWT_MAX_LIFETIME, default=24h"`
	CookieName       string        `env:"BELLHOP_COOKIE_NAME, default=bellhop_token"`
	AllowedOrigins   []string      `env:"BELLHOP_ALLOWED_ORIGINS"`

	Heartbeat              time.Duration `env:"BELLHOP_HEARTBEAT, default=25s"`
	RetryHint              time.Duration `env:"BELLHOP_RETRY_HINT, default=2s"`
	StreamBuffer           int           `env:"BELLHOP_STREAM_BUFFER, default=32"`
	WriteTimeout           time.Duration `env:"BELLHOP_WRITE_TIMEOUT, default=10s"`
	MaxStreams             int           `env:"BELLHOP_MAX_STREAMS, default=20000"`
	MaxStreamsPerRecipient int           `env:"BELLHOP_MAX_STREAMS_PER_RECIPIENT, default=16"`
	UnreadCountCap         int64         `env:"BELLHOP_UNREAD_COUNT_CAP, default=1000"`
	RequestTimeout         time.Duration `env:"BELLHOP_REQUEST_TIMEOUT, default=10s"`

	// Fan-out through a broker (package fanout): a nats:// or redis:// URL.
	Fanout       string `env:"BELLHOP_FANOUT"`
	FanoutPrefix string `env:"BELLHOP_FANOUT_PREFIX"`

	// The worker's.
	WakeMode      string        `env:"BELLHOP_WAKE_MODE, default=adaptive"`
	PollInterval  time.Duration `env:"BELLHOP_POLL_INTERVAL, default=5ms"`
	BusyPoll      time.Duration `env:"BELLHOP_BUSY_POLL, default=1ms"`
	DurableStamps bool          `env:"BELLHOP_DURABLE_STAMPS"`
	LookBefore    bool          `env:"BELLHOP_LOOK_BEFORE_STAMP, default=false"`
	ParkRate      int           `env:"BELLHOP_PARK_RATE, default=400"`
	SweepInterval time.Duration `env:"BELLHOP_SWEEP_INTERVAL, default=1s"`
	Retention     time.Duration `env:"BELLHOP_RETENTION, default=2160h"`
	ReplayWindow  time.Duration `env:"BELLHOP_REPLAY_WINDOW, default=24h"`
	PruneInterval time.Duration `env:"BELLHOP_PRUNE_INTERVAL, default=1m"`

	// The webhook channel's (worker.Config).
	WebhookURL         string                   `env:"BELLHOP_WEBHOOK_URL"`
	WebhookSecret      string                   `env:"BELLHOP_WEBHOOK_SECRET"`
	WebhookEvents      []string                 `env:"BELLHOP_WEBHOOK_EVENTS, default=notification.created"`
	WebhookTimeout     time.Duration            `env:"BELLHOP_WEBHOOK_TIMEOUT, default=10s"`
	WebhookMaxAttempts int                      `env:"BELLHOP_WEBHOOK_MAX_ATTEMPTS, default=25"`
	WebhookWorkers     int                      `env:"BELLHOP_WEBHOOK_WORKERS, default=10"`
	EscalateAfter      map[string]time.Duration `env:"BELLHOP_ESCALATE_AFTER"`
	RescueAfter        time.Duration            `env:"BELLHOP_RESCUE_AFTER, default=5m"`
}

// relayConfig is e as a relay.Config, with the worker's part in Worker.
func (e envConfig) relayConfig() relay.Config {
	return relay.Config{
		DatabaseURL:            e.DatabaseURL,
		MaxConns:               e.MaxConns,
		Schema:                 e.Schema,
		ListenAddr:             e.ListenAddr,
		OpsAddr:                e.OpsAddr,
		TLSCertFile:            e.TLSCertFile,
		TLSKeyFile:             e.TLSKeyFile,
		JWTSecret:              e.JWTSecret,
		JWTPublicKeyFile:       e.JWTPublicKeyFile,
		JWKSURL:                e.JWKSURL,
		JWTIssuer:              e.JWTIssuer,
		JWTAudience:            e.JWTAudience,
		JWTMaxLifetime:         e.JWTMaxLifetime,
		CookieName:             e.CookieName,
		AllowedOrigins:         e.AllowedOrigins,
		Heartbeat:              e.Heartbeat,
		RetryHint:              e.RetryHint,
		StreamBuffer:           e.StreamBuffer,
		WriteTimeout:           e.WriteTimeout,
		MaxStreams:             e.MaxStreams,
		MaxStreamsPerRecipient: e.MaxStreamsPerRecipient,
		UnreadCountCap:         e.UnreadCountCap,
		RequestTimeout:         e.RequestTimeout,
		Worker: worker.Config{
			Schema:          e.Schema,
			WakeMode:        worker.WakeMode(e.WakeMode),
			PollInterval:    e.PollInterval,
			BusyPoll:        e.BusyPoll,
			DurableStamps:   e.DurableStamps,
			LookBeforeStamp: e.LookBefore,
			ParkRate:        parkRate(e.ParkRate),
			SweepInterval:   e.SweepInterval,
			Retention:       e.Retention,
			ReplayWindow:    e.ReplayWindow,
			PruneInterval:   e.PruneInterval,

			WebhookURL:         e.WebhookURL,
			WebhookSecret:      e.WebhookSecret,
			WebhookEvents:      e.WebhookEvents,
			WebhookTimeout:     e.WebhookTimeout,
			WebhookMaxAttempts: e.WebhookMaxAttempts,
			WebhookWorkers:     e.WebhookWorkers,
			EscalateAfter:      e.EscalateAfter,
			RescueAfter:        e.RescueAfter,
		},
	}
}

// loadConfig reads the environment and checks what every command needs.
func loadConfig(ctx context.Context) (envConfig, error) {
	var cfg envConfig
	if err := readEnv(ctx, &cfg); err != nil {
		return cfg, err
	}
	if cfg.DatabaseURL == "" {
		return cfg, errors.New("DATABASE_URL is not set: export DATABASE_URL=postgres://user:pass@host:5432/db")
	}
	return cfg, checkConfig(cfg)
}

// checkConfig checks what the libraries would refuse later, under the
// variables' names.
func checkConfig(cfg envConfig) error {
	if err := sqlq.CheckSchema(cfg.Schema); err != nil {
		return fmt.Errorf("BELLHOP_SCHEMA: %w", err)
	}
	switch cfg.WakeMode {
	case "adaptive", "notify", "poll", "logical":
	default:
		return fmt.Errorf("BELLHOP_WAKE_MODE=%q is not one of adaptive (the default), notify, poll, logical", cfg.WakeMode)
	}
	if cfg.ParkRate < 0 {
		return fmt.Errorf("BELLHOP_PARK_RATE=%d must be a rate of commits a second, such as 400 (the default), or 0 to turn parking off", cfg.ParkRate)
	}
	if cfg.JWTMaxLifetime <= 0 {
		return fmt.Errorf("BELLHOP_JWT_MAX_LIFETIME=%s must be positive, e.g. 1h (the default is 24h)", cfg.JWTMaxLifetime)
	}
	if err := checkPositive(cfg); err != nil {
		return err
	}
	for _, o := range cfg.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("BELLHOP_ALLOWED_ORIGINS: %w", err)
		}
	}
	// The worker's own checks, under the variables' names (envError): a
	// webhook URL without a secret fails every command, not only serve.
	wcfg := cfg.relayConfig().Worker
	return envError(worker.CheckConfig(&wcfg))
}

// mustBePositive are the variables whose value the libraries replace with
// their default when it is 0 or less (relay.Config, worker.Config), and
// BELLHOP_DB_MAX_CONNS, which pgxpool refuses: set to such a value, one is
// a mistake that would otherwise pass unnoticed.
var mustBePositive = map[string]bool{
	"BELLHOP_DB_MAX_CONNS": true, "BELLHOP_HEARTBEAT": true, "BELLHOP_RETRY_HINT": true,
	"BELLHOP_STREAM_BUFFER": true, "BELLHOP_WRITE_TIMEOUT": true, "BELLHOP_UNREAD_COUNT_CAP": true,
	"BELLHOP_REQUEST_TIMEOUT": true, "BELLHOP_POLL_INTERVAL": true, "BELLHOP_BUSY_POLL": true,
	"BELLHOP_SWEEP_INTERVAL": true, "BELLHOP_RETENTION": true, "BELLHOP_REPLAY_WINDOW": true,
	"BELLHOP_PRUNE_INTERVAL": true, "BELLHOP_WEBHOOK_TIMEOUT": true, "BELLHOP_WEBHOOK_MAX_ATTEMPTS": true,
	"BELLHOP_WEBHOOK_WORKERS": true, "BELLHOP_RESCUE_AFTER": true,
}

// checkPositive refuses a variable of mustBePositive set to 0 or less,
// naming its default.
func checkPositive(cfg envConfig) error {
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := envName(f)
		if !mustBePositive[name] {
			continue
		}
		// Every such field is a time.Duration or an integer.
		if n := v.Field(i).Int(); n <= 0 {
			_, def, _ := strings.Cut(f.Tag.Get("env"), "default=")
			return fmt.Errorf("%s=%v must be positive, e.g. %s (the default); unset it for the default", name, v.Field(i).Interface(), def)
		}
	}
	return nil
}

// checkOrigin reports an entry of BELLHOP_ALLOWED_ORIGINS that no browser
// would send as its Origin header, which the relay compares byte for byte:
// such an entry silently never matches.
func checkOrigin(o string) error {
	if o == "" {
		return errors.New("an empty entry: drop the stray comma")
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(o, "#") {
		return fmt.Errorf("%q is not an origin: write scheme://host[:port], as browsers send it, with no path and no trailing slash, e.g. https://app.example.com", o)
	}
	if strings.ToLower(o) != o {
		return fmt.Errorf("%q has capitals: write %q, as browsers send it", o, strings.ToLower(o))
	}
	if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
		return fmt.Errorf("%q names the scheme's default port, which browsers leave out: write %s://%s", o, u.Scheme, strings.TrimSuffix(u.Host, ":"+u.Port()))
	}
	return nil
}

// readEnv is envconfig.Process with errors that name the variable, not the
// Go field envconfig names ("Heartbeat: time: invalid duration").
func readEnv(ctx context.Context, cfg *envConfig) error {
	err := envconfig.Process(ctx, cfg)
	if err == nil {
		return nil
	}
	t := reflect.TypeOf(*cfg)
	for i := range t.NumField() {
		f := t.Field(i)
		name := envName(f)
		rest, ok := strings.CutPrefix(err.Error(), f.Name+": ")
		if !ok || name == "" {
			continue
		}
		hint := ""
		switch f.Type {
		case reflect.TypeOf(time.Duration(0)):
			hint = " (want a duration such as 500ms, 25s or 1h)"
		case reflect.TypeOf(0), reflect.TypeOf(int32(0)), reflect.TypeOf(int64(0)):
			hint = " (want an integer)"
		}
		return fmt.Errorf("configuration: %s: %s%s", name, rest, hint)
	}
	return fmt.Errorf("configuration: %w", err)
}

func envName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// configField is a Config field named in a library's error.
var configField = regexp.MustCompile(`\b(?:relay\.|worker\.)?Config\.(?:Worker\.)?([A-Za-z]+)`)

// envError names the variables behind the Config fields err names: the
// libraries know nothing of the environment.
func envError(err error) error {
	if err == nil {
		return nil
	}
	t := reflect.TypeOf(envConfig{})
	msg := configField.ReplaceAllStringFunc(err.Error(), func(m string) string {
		field := configField.FindStringSubmatch(m)[1]
		if f, ok := t.FieldByName(field); ok && envName(f) != "" {
			return envName(f)
		}
		return m
	})
	return errors.New(msg)
}

// pprofHandler serves net/http/pprof on a mux of its own: the binary's, on
// BELLHOP_PPROF_ADDR only (the package also registers on
// http.DefaultServeMux, which nothing here serves).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// parkRate is BELLHOP_PARK_RATE as worker.Config.ParkRate: 0 there is the
// default, and here turns parking off.
func parkRate(v int) int {
	if v == 0 {
		return -1
	}
	return v
}
