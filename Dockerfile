# Moat on the current Node LTS. The TypeScript sources run directly (Node's type stripping).
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY migrations ./migrations
COPY views ./views
COPY bin ./bin
RUN mkdir -p /app/keys /app/data && chown -R node:node /app/keys /app/data
USER node
EXPOSE 8080
# Configuration comes from /app/moat.yaml (mounted) and MOAT_* variables.
ENTRYPOINT ["node", "bin/moat.js"]
CMD ["start"]
