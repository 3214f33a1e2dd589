// Package app wires the tenantauth binary's three modes (operator,
// authserver, dev) from flags to managers. It holds wiring only; the logic
// lives in controllers, webhook and authserver.
package app

import (
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tav1 "github.com/tenantauth/tenantauth/api/v1alpha1"
	"github.com/tenantauth/tenantauth/authserver/kube"
	"github.com/tenantauth/tenantauth/internal/trust"
)

// Scheme knows the built-in kinds and tenantauth.io/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := tav1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// cacheOptions limits the informer cache to the watched namespaces, and its
// Secrets to the ones tenantauth labelled, so the operator holds none of
// the cluster's other Secrets in memory. alsoNamespaces join a namespace
// list (the operator's own, for the records it writes there).
func cacheOptions(watchNamespaces string, alsoNamespaces ...string) cache.Options {
	req, err := labels.NewRequirement(tav1.LabelComponent, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.NewSelector().Add(*req)},
	}}
	if ns := splitList(watchNamespaces); len(ns) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range append(ns, alsoNamespaces...) {
			opts.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return opts
}

// authServerCacheOptions is the auth server's cache: the three kinds in the
// watched namespaces, and Secrets only from the system namespace and only
// of the components it reads (the operator's records and its own store).
// Plaintext API keys, the webhook CA and the installation key never enter
// its memory, and its RBAC reads Secrets in that one namespace only.
func authServerCacheOptions(watchNamespaces, systemNamespace string) cache.Options {
	req, err := labels.NewRequirement(tav1.LabelComponent, selection.In, append([]string{tav1.ComponentStore}, trust.Components...))
	if err != nil {
		panic(err)
	}
	// A fresh ByObject map: its keys are pointers, so adding a second
	// Secret entry to cacheOptions' map would leave two, and the cache
	// would pick either.
	opts := cacheOptions(watchNamespaces)
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.Secret{}: {
		Namespaces: map[string]cache.Config{systemNamespace: {}},
		Label:      labels.NewSelector().Add(*req),
		// Every session is a Secret here: keep each one small.
		Transform: kube.TransformSecret,
	}}
	opts.DefaultTransform = cache.TransformStripManagedFields()
	return opts
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// podNamespace is the namespace the process runs in, from the downward API,
// or fallback.
func podNamespace(fallback string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return fallback
}

func usage(err error) error {
	return fmt.Errorf("%w (see --help)", err)
}
