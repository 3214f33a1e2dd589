// Package testenv starts a real kube-apiserver and etcd for integration
// tests, from the binaries hack/controlplane.sh builds into bin/k8s/.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeVersion is the version of the control-plane binaries.
const KubeVersion = "v1.37.2"

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir is where etcd, kube-apiserver and kubectl are: $ENVTEST_ASSETS,
// else bin/k8s/<version> in the repository.
func AssetsDir() string {
	if d := os.Getenv("ENVTEST_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin", "k8s", KubeVersion)
}

// New returns an environment with the project's CRDs. Callers may add
// webhook options before Start.
func New() (*envtest.Environment, error) {
	assets := AssetsDir()
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run 'make envtest-assets' first: %w", assets, err)
	}
	return &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}, nil
}

// Start starts an environment with the project's CRDs.
func Start() (*envtest.Environment, *rest.Config, error) {
	env, err := New()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start envtest: %w", err)
	}
	return env, cfg, nil
}

// Kubeconfig renders a kubeconfig for kubectl from a REST config with
// client-certificate credentials, as envtest's admin user has.
func Kubeconfig(cfg *rest.Config, namespace string) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["tenantauth-dev"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["tenantauth-dev"] = &clientcmdapi.Context{Cluster: "tenantauth-dev", AuthInfo: "admin", Namespace: namespace}
	kc.CurrentContext = "tenantauth-dev"
	return clientcmd.Write(*kc)
}
