# Build check targets (include from the Makefile: `include mk/buildcheck.mk`).
# GO is the Makefile's; BUILDCHECK_FLAGS e.g. "-only get-me,login-user -j 2".
GO               ?= go
BUILDCHECK_FLAGS ?=

.PHONY: buildcheck buildcheck-test platform-test

## buildcheck: shrinkwrap every shop-go function of stack.yml (plus the
## template's starter) as faas-cli does and run the template Dockerfile's
## build steps in each context.
buildcheck:
	$(GO) run ./cmd/buildcheck -stack stack.yml $(BUILDCHECK_FLAGS)

## buildcheck-test: the build check's own tests (fixture functions that must fail).
buildcheck-test:
	$(GO) test ./internal/buildcheck/... ./cmd/buildcheck/...

## platform-test: the platform packages' tests (real PostgreSQL on 127.0.0.1:5432).
platform-test:
	$(GO) test ./internal/fault/... ./internal/fnhttp/... ./internal/config/... ./internal/auth/... \
		./internal/postgres/... ./internal/telemetry/... ./internal/events/... ./internal/outbox/... \
		./internal/stackfile/... ./fnserve/...
