# syntax=docker/dockerfile:1
# The tenantauth image: one static binary of main.go on distroless static
# nonroot. `make image` builds the same image without docker (hack/image).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# The whole tree, less what .dockerignore drops: main.go may embed files
# from config/ (the CRDs for `tenantauth dev`).
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/tenantauth .

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/tenantauth /tenantauth
USER 65532:65532
ENTRYPOINT ["/tenantauth"]
