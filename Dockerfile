# seal-idms container image: Node 24, production dependencies only, runs as the unprivileged `node` user.
# Build: docker build -t seal-idms .   Run: see docs/deploy.md (docs/compose.yaml: server + PostgreSQL 18).

# Stage 1: install everything (the build needs dev tools), then `npm run build` assembles dist/image — sources,
# migrations, views and the production node_modules — and smoke-checks that every module loads from it (it also
# compiles the publishable packages, which the image does not use).
FROM node:24-slim AS build
WORKDIR /build
# The workspace manifests too (packages/verify: the @seal-idms/verify kit), so npm ci installs what the lockfile says.
COPY package.json package-lock.json ./
COPY packages/verify/package.json packages/verify/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# Stage 2: the bundle alone on a clean Node 24 (no npm cache, no dev dependencies, no compiler).
FROM node:24-slim
ENV NODE_ENV=production \
    IDMS_HOST=0.0.0.0 \
    IDMS_PORT=3000 \
    IDMS_DATA_DIR=/var/lib/seal-idms
WORKDIR /app
# Owned by root and read-only for the server: only the data dir (embedded PostgreSQL, if used) is writable.
COPY --from=build /build/dist/image ./
RUN mkdir -p /var/lib/seal-idms && chown node:node /var/lib/seal-idms
USER node
VOLUME ["/var/lib/seal-idms"]
EXPOSE 3000
# Binding 0.0.0.0 needs TLS (IDMS_TLS_CERT/IDMS_TLS_KEY) or IDMS_TRUST_PROXY=1 behind a TLS proxy: the server
# refuses to start otherwise. NODE_ENV=production also requires IDMS_SECRET.
CMD ["node", "src/main.ts", "serve"]
