//go:build e2e

package e2e

import "fmt"

// The e2e test's own objects, in namespace e2e. config/samples is applied
// too (when present), but the checks below rely only on these names.
const (
	tenantNS  = "e2e"
	orgSlug   = "e2e-acme"
	otherSlug = "e2e-globex"
	keyName   = "e2e-ci"
	loadKey   = "e2e-load"
	viewer    = "viewer@e2e-acme.test"
)

var tenantObjects = fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: tenantauth.io/v1alpha1
kind: Organization
metadata: {name: %[2]s, namespace: %[1]s}
spec: {displayName: "E2E Acme"}
---
apiVersion: tenantauth.io/v1alpha1
kind: Organization
metadata: {name: %[3]s, namespace: %[1]s}
spec: {displayName: "E2E Globex"}
---
apiVersion: tenantauth.io/v1alpha1
kind: Membership
metadata: {name: owner, namespace: %[1]s}
spec: {organization: %[2]s, email: owner@e2e-acme.test, role: owner}
---
apiVersion: tenantauth.io/v1alpha1
kind: Membership
metadata: {name: viewer, namespace: %[1]s}
spec: {organization: %[2]s, email: %[6]s, role: viewer}
---
apiVersion: tenantauth.io/v1alpha1
kind: APIKey
metadata: {name: %[4]s, namespace: %[1]s}
spec: {organization: %[2]s, scopes: [read, write], description: "revoked by the e2e test"}
---
apiVersion: tenantauth.io/v1alpha1
kind: APIKey
metadata: {name: %[5]s, namespace: %[1]s}
spec: {organization: %[2]s, scopes: [read], description: "load while an auth server pod is deleted"}
---
# Kubernetes RBAC lets the viewer try; admission must say no.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tenant-editor, namespace: %[1]s}
rules:
- apiGroups: [tenantauth.io]
  resources: [organizations, memberships, apikeys]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-editor, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %[6]s}
`, tenantNS, orgSlug, otherSlug, keyName, loadKey, viewer)

// memberOfMissingOrg refers to an Organization that does not exist: only
// the validating webhook can refuse it.
var memberOfMissingOrg = fmt.Sprintf(`
apiVersion: tenantauth.io/v1alpha1
kind: Membership
metadata: {name: ghost, namespace: %s}
spec: {organization: no-such-org, email: ghost@e2e-acme.test, role: member}
`, tenantNS)

// viewerKey is an APIKey a viewer may not create.
var viewerKey = fmt.Sprintf(`
apiVersion: tenantauth.io/v1alpha1
kind: APIKey
metadata: {name: viewer-key, namespace: %s}
spec: {organization: %s, scopes: [admin]}
`, tenantNS, orgSlug)

// proxy is a reverse proxy in front of the auth server's Service, the way an
// ingress controller calls /verify. The test reaches it by port-forward.
func proxy(upstream string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: verify-proxy, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: verify-proxy}}
  template:
    metadata: {labels: {app: verify-proxy}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: proxy
        image: localhost/echo:e2e
        imagePullPolicy: Never
        args: ["-upstream", %[2]q]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, tenantNS, upstream)
}

// echo is the cluster smoke test: two pods behind a Service.
const echo = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: echo
        image: localhost/echo:e2e
        imagePullPolicy: Never
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`
