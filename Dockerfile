# Ballot node image: `docker build -t ballot .`, then e.g.
#   docker run -v ballot-n1:/data -e BALLOT_ID=n1 -e BALLOT_MEMBERS=n1=http://n1:2379,n2=http://n2:2379,n3=http://n3:2379 ballot
# Every flag of `ballot start` is an environment variable (BALLOT_<FLAG>). Data lives on /data.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY examples ./examples
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    BALLOT_DATA_DIR=/data \
    BALLOT_LISTEN=http://0.0.0.0:2379 \
    BALLOT_LOG_FORMAT=json
WORKDIR /opt/ballot
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# An unprivileged user owns the data volume; the process never runs as root.
RUN groupadd --system --gid 10001 ballot && useradd --system --uid 10001 --gid ballot --home /data ballot \
    && mkdir -p /data && chown ballot:ballot /data
USER ballot
VOLUME /data
EXPOSE 2379
# Ready = a leader is known and this node has caught up (see GET /ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:2379/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: a leader hands leadership over, then the node exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["start"]
