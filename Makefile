# tenantauth: Kubernetes-native multi-tenant authentication.

KUBE_VERSION ?= v1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(KUBE_VERSION)
export ENVTEST_ASSETS
export KUBEBUILDER_ASSETS = $(ENVTEST_ASSETS)

GO_TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook configuration into config/.
	$(CONTROLLER_GEN) rbac:roleName=tenantauth-operator crd webhook paths="./api/...;./controllers/...;./webhook/...;./internal/webhookcert/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: helm-crds
helm-crds: manifests ## Copy generated CRDs into the chart.
	hack/helm-crds.sh

.PHONY: fmt
fmt: ## Rewrite the Go files in gofmt's form (lint only checks).
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: gofmt-check
gofmt-check: ## Fail, rewriting nothing, if a Go file is not in gofmt's form.
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$out" || { echo "$$out"; echo "not gofmt-formatted: run 'make fmt' and commit"; exit 1; }

.PHONY: archcheck
archcheck: ## Check the import direction between the packages (internal/archtest).
	go test -count=1 ./internal/archtest/

.PHONY: lint
lint: gofmt-check vet archcheck ## Run the linters that need no download: gofmt check, go vet, import direction.

.PHONY: envtest-assets
envtest-assets: ## Build etcd, kube-apiserver and kubectl from the Go module proxy into bin/k8s/.
	KUBE_VERSION=$(KUBE_VERSION) hack/controlplane.sh >/dev/null

.PHONY: test
test: envtest-assets ## Run unit and envtest integration tests.
	go test $(GO_TEST_FLAGS) ./...

FUZZTIME ?= 5m
.PHONY: fuzz
fuzz: ## Run every fuzz target of the auth server and identity packages for FUZZTIME each.
	@for t in $$(go test -list '^Fuzz' ./authserver/ | grep ^Fuzz); do go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./authserver/ || exit 1; done
	go test -run '^$$' -fuzz '^FuzzCanonicalEmail$$' -fuzztime $(FUZZTIME) ./internal/identity/

.PHONY: bench
bench: envtest-assets ## Run the Go benchmarks.
	go test -run '^$$' -bench . -benchmem ./...

.PHONY: tidy-check
tidy-check: ## Fail if go mod tidy would change go.mod or go.sum of any module here.
	@for m in . hack/controlplane hack/image; do \
		(cd $$m && go mod tidy) || exit 1; \
		git diff --exit-code -- $$m/go.mod $$m/go.sum || { echo "$$m: go.mod/go.sum are not tidy: run 'go mod tidy' in $$m and commit"; exit 1; }; \
	done

.PHONY: verify
verify: tidy-check generate manifests helm-crds ## Regenerate everything and fail if the tree changed.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests helm-crds' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts)" || { git status --porcelain -- api config charts; echo "untracked generated files"; exit 1; }

.PHONY: dev
dev: envtest-assets ## Run everything locally on an embedded control plane.
	go run . dev

##@ Build

.PHONY: build
build: ## Build the tenantauth binary.
	CGO_ENABLED=0 go build -trimpath -o bin/tenantauth .

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

$(HELM):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $(HELM)

##@ Images and end-to-end

IMG ?= localhost/tenantauth:dev

.PHONY: image
image: ## Build the tenantauth image as a tarball without docker (bin/images/tenantauth.tar; IMG names it).
	TENANTAUTH_IMAGE=$(IMG) hack/e2e/images.sh tenantauth
	@echo "bin/images/tenantauth.tar ($(IMG)): load it with 'docker load -i' or 'ctr -n k8s.io images import'"

.PHONY: docker-build
docker-build: ## Build the tenantauth image with docker (IMG names it).
	docker build -t $(IMG) .

.PHONY: e2e
e2e: $(HELM) ## Run the end-to-end test on a single-node cluster built here (root; see hack/e2e/run.sh).
	HELM=$(HELM) hack/e2e/run.sh

.PHONY: e2e-up
e2e-up: ## Bring up the e2e cluster and leave it running (KUBECONFIG=bin/e2e/kubeconfig).
	hack/e2e/deps.sh
	hack/e2e/build-components.sh >/dev/null
	hack/e2e/cluster-up.sh
	hack/e2e/images.sh echo import

.PHONY: e2e-down
e2e-down: ## Tear the e2e cluster down and check nothing is left.
	hack/e2e/cluster-down.sh

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint and render the chart with its default and cert-manager values.
	$(HELM) lint charts/tenantauth
	$(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) >/dev/null
	$(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) \
		--set certManager.enabled=true --set serviceMonitor.enabled=true --set 'watchNamespaces={team-a,team-b}' >/dev/null
	$(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) \
		--set store.backend=postgres --set store.postgres.existingSecret=tenantauth-postgres | grep -q -- '--postgres-dsn-file=/etc/tenantauth/postgres/dsn'
	! $(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) --set store.backend=postgres >/dev/null 2>&1
	@# --sso-allow-private-networks reaches both Deployments only when sso.allowPrivateNetworks is set.
	for d in authserver operator; do \
		$(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) --show-only templates/$$d-deployment.yaml \
			--set sso.allowPrivateNetworks=true | grep -qx -- ' *- --sso-allow-private-networks' || { echo "$$d: no --sso-allow-private-networks with sso.allowPrivateNetworks=true"; exit 1; }; \
		! $(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) --show-only templates/$$d-deployment.yaml \
			| grep -q -- '--sso-allow-private-networks' || { echo "$$d: --sso-allow-private-networks without sso.allowPrivateNetworks"; exit 1; }; \
	done
	! $(HELM) template tenantauth charts/tenantauth -n tenantauth-system --kube-version $(KUBE_VERSION) --set sso.allowPrivateNetworks=yes >/dev/null 2>&1
