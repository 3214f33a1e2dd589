// Module image builds the tenantauth and pause container images as
// tarballs without a docker engine. It is its own module so the operator's
// go.mod never pulls in go-containerregistry.
module github.com/tenantauth/tenantauth/hack/image

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
