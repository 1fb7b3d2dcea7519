# Moat on the current Node LTS. The TypeScript sources run directly (Node's type stripping).
#
# keys.source pkcs11 (signing keys in the bank's HSM) needs the optional graphene-pk11 package,
# whose pkcs11js binding is compiled at install: build with `--build-arg PKCS11=1` to include it
# (the compiler stays in the build stage). The HSM vendor's PKCS#11 library is mounted at run time.
FROM node:24-bookworm-slim AS dependencies
ARG PKCS11=0
WORKDIR /app
COPY package.json package-lock.json ./
RUN if [ "$PKCS11" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*; \
    fi \
    && npm ci --omit=dev --no-audit --no-fund \
    && if [ "$PKCS11" = 1 ]; then node -e "require('graphene-pk11')"; else rm -rf node_modules/graphene-pk11 node_modules/pkcs11js; fi

FROM node:24-bookworm-slim
ENV NODE_ENV=production MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=dependencies /app/node_modules ./node_modules
COPY src ./src
COPY migrations ./migrations
COPY views ./views
COPY bin ./bin
COPY scripts/with-node.sh scripts/use-node.sh ./scripts/
# The base image's Node must be one Moat runs on, or with-node.sh would try to fetch one at start.
RUN node -e "const [major, minor] = process.versions.node.split('.').map(Number); if (major < 24 || (major === 24 && minor < 7)) { console.error('moat: the image needs Node 24.7 or later; the base image has ' + process.version); process.exit(1); }"
RUN mkdir -p /app/keys /app/data && chown -R node:node /app/keys /app/data
USER node
EXPOSE 8080
# Configuration comes from /app/moat.yaml (mounted) and MOAT_* variables.
# Memory and GC (issue 20; bench/servers/moat-process.ts says why): V8's generations sized for short-lived requests, WebAssembly (the embedded database) left in the baseline compiler, two malloc arenas, a fixed mmap threshold.
# scripts/with-node.sh execs node with these flags (node is PID 1 and gets the signals), except
# --liftoff-only on an x86-64 CPU without SSE4.1 (before ~2011, QEMU's qemu64 model), where V8 would abort.
ENTRYPOINT ["sh", "scripts/with-node.sh", "--max-semi-space-size=16", "--heap-growing-percent=30", "--liftoff-only", "bin/moat.js"]
CMD ["start"]
