package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

const help = `tenantauth: multi-tenant API authentication for Kubernetes.

Usage:
  tenantauth operator   [flags]   controllers and admission webhooks
  tenantauth authserver [flags]   the HTTP token endpoints
  tenantauth dev        [flags]   everything on one machine, with an embedded control plane

Run 'tenantauth <mode> --help' for a mode's flags.`

// Main runs the mode named by args[0].
func Main(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println(help)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("tenantauth "+args[0], flag.ContinueOnError)
	zopts := zap.Options{}
	zopts.BindFlags(fs)
	var run func() error
	switch args[0] {
	case "operator":
		var o OperatorOptions
		o.Bind(fs)
		run = func() error { return runOperator(ctx, o) }
	case "authserver":
		var o AuthServerOptions
		o.Bind(fs)
		run = func() error { return runAuthServer(ctx, o) }
	case "dev":
		var o DevOptions
		o.Bind(fs)
		run = func() error { return RunDev(ctx, o) }
	default:
		return usage(fmt.Errorf("unknown mode %q", args[0]))
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	return run()
}

func runOperator(ctx context.Context, o OperatorOptions) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := NewOperator(ctx, cfg, o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
